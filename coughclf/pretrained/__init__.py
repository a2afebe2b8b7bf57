"""Readers of published pretrained weights and their label sets (TFLite, Keras 2 HDF5, AudioSet names)."""
