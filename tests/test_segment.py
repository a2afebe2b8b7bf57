"""Energy-based silence trimming and cough-event segmentation on signals with known events."""

import numpy as np
import pytest

from coughclf.segment import frame_energy_db, segment_events, trim_silence

RATE = 16000
# Frame/hop granularity of the defaults: boundaries are exact to within one hop plus the frame's reach.
TOLERANCE = 1024 / RATE


def recording(bursts, seconds=3.0, floor=1e-3, seed=0, clicks=()):
    """Noise floor with loud noise bursts at ``bursts`` [(start_s, end_s, amplitude)] and one-sample clicks."""
    rng = np.random.default_rng(seed)
    audio = floor * rng.standard_normal(int(seconds * RATE))
    for start, end, amplitude in bursts:
        audio[int(start * RATE):int(end * RATE)] += amplitude * rng.standard_normal(int(end * RATE) - int(start * RATE))
    for at in clicks:
        audio[int(at * RATE)] = 0.9
    return audio.astype(np.float32)


def seconds(events):
    return [(start / RATE, end / RATE) for start, end in events]


def test_frame_energy_is_relative_to_the_loudest_frame():
    energy = frame_energy_db(recording([(1.0, 1.5, 0.5)]), frame_length=1024, hop_length=256)
    assert energy.max() == pytest.approx(0.0)
    assert energy.min() == pytest.approx(20 * np.log10(1e-3 / 0.5), abs=3.0)


def test_events_are_found_merged_across_short_gaps_and_clicks_dropped():
    audio = recording([(0.5, 0.8, 0.5), (0.9, 1.1, 0.4), (2.0, 2.3, 0.5)], clicks=[1.6])
    events = seconds(segment_events(audio, RATE, pad_seconds=0.0))
    assert len(events) == 2  # the two bursts 0.1 s apart are one cough; the click is no event
    for (start, end), (true_start, true_end) in zip(events, [(0.5, 1.1), (2.0, 2.3)]):
        assert start == pytest.approx(true_start, abs=TOLERANCE)
        assert end == pytest.approx(true_end, abs=TOLERANCE)


def test_gap_threshold_and_minimum_length_are_configurable():
    audio = recording([(0.5, 0.8, 0.5), (1.0, 1.2, 0.4), (2.0, 2.05, 0.5)])
    merged = segment_events(audio, RATE, max_gap_seconds=0.3, min_event_seconds=0.02)
    assert len(merged) == 2
    split = segment_events(audio, RATE, max_gap_seconds=0.1, min_event_seconds=0.02)
    assert len(split) == 3
    long_only = segment_events(audio, RATE, max_gap_seconds=0.1, min_event_seconds=0.15)
    assert len(long_only) == 2  # the 0.05 s burst is too short now


def test_threshold_decides_whether_a_quiet_event_counts():
    audio = recording([(0.5, 0.8, 0.5), (2.0, 2.3, 0.02)])  # the second is 28 dB quieter
    assert len(segment_events(audio, RATE, threshold_db=-20.0)) == 1
    assert len(segment_events(audio, RATE, threshold_db=-35.0)) == 2


def test_padding_widens_events_without_overlap():
    audio = recording([(0.5, 0.8, 0.5), (1.05, 1.3, 0.5)])
    events = segment_events(audio, RATE, max_gap_seconds=0.05, pad_seconds=0.2)
    assert len(events) == 2
    assert events[0][1] <= events[1][0]
    assert events[0][0] / RATE == pytest.approx(0.3, abs=TOLERANCE)


def test_trim_silence_cuts_leading_and_trailing_quiet_parts():
    audio = recording([(1.0, 1.8, 0.5)], seconds=3.0)
    trimmed = trim_silence(audio, RATE, pad_seconds=0.1)
    start = int(np.flatnonzero(audio == trimmed[0])[0])
    assert start / RATE == pytest.approx(0.9, abs=TOLERANCE)
    assert len(trimmed) / RATE == pytest.approx(1.0, abs=2 * TOLERANCE)
    assert len(trim_silence(audio, RATE, threshold_db=-80.0)) == len(audio)  # the floor counts as sound there
