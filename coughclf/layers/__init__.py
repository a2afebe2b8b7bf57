"""Keras layers that run inside coughclf models: audio front end and augmentation."""

from coughclf.layers.augment import (
    BackgroundNoise,
    ColouredNoise,
    FrequencyMasking,
    PitchShift,
    PolarityInversion,
    RandomGain,
    SpecAugment,
    TimeInversion,
    TimeMasking,
    TimeShift,
    TimeWarp,
    build_augmentation,
    load_noise_bank,
)
from coughclf.layers.frontend import MFCC, LogMelSpectrogram, RMSEnergy, SpectralCentroid, ZeroCrossingRate
from coughclf.layers.kaldi import KaldiFbank
from coughclf.layers.pcm import PCMToFloat
from coughclf.layers.windows import ClipWindow
