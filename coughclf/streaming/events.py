"""From the probabilities of each hop's window to events: a label, where it was, how sure.

An event of a label opens at the first hop whose window gives it ``threshold`` or more (unless
the label is ignored, or its last event ended less than ``refractory`` seconds earlier), lasts
while it stays there, and closes at the first hop below (or at the end of the stream); it is
reported then, the moment its extent is known. Its fields:

* ``label``; ``score``: the highest probability of its run of hops;
* ``start``, ``end`` (seconds): the window in the middle of the run. A window's score rises as it
  takes in more of a keyword and falls as it lets it go, so the window midway between the first
  and the last one above the threshold is the one best aligned with the keyword;
* ``detected`` (seconds): the end of the first window above the threshold, when a device
  listening live would have known; ``hops``: the run's length.

Example:
    >>> detector = EventDetector(["yes", "no"], window_seconds=1.0, threshold=0.5)
    >>> for end, p_yes in [(1.0, 0.1), (1.1, 0.7), (1.2, 0.9), (1.3, 0.8), (1.4, 0.2)]:
    ...     for event in detector.update(end, [p_yes, 1 - p_yes]):
    ...         print(event)
    {'label': 'no', 'start': 0.0, 'end': 1.0, 'score': 0.9, 'detected': 1.0, 'hops': 1}
    {'label': 'yes', 'start': 0.2, 'end': 1.2, 'score': 0.9, 'detected': 1.1, 'hops': 3}
"""

import numpy as np

# Decimal places of the times and scores in an event.
PLACES = 4


class EventDetector:
    """Events from ``update(end_seconds, probabilities)`` calls, one per hop in time order (see the module)."""

    def __init__(self, labels, window_seconds, threshold=0.5, refractory=0.0, ignore=()):
        self.labels = list(labels)
        self.window = float(window_seconds)
        self.threshold = float(threshold)
        self.refractory = float(refractory)
        self.watched = [index for index, label in enumerate(self.labels) if label not in set(ignore)]
        self.runs = {}  # label index -> [first end, last end, best score, hops]
        self.quiet_until = {}  # label index -> the time its refractory period ends

    def update(self, end, probabilities):
        """The events that close at the hop whose window ends at ``end`` seconds."""
        closed = []
        for index in self.watched:
            probability = float(probabilities[index])
            run = self.runs.get(index)
            if probability >= self.threshold:
                if run is not None:
                    run[1], run[2], run[3] = end, max(run[2], probability), run[3] + 1
                elif end >= self.quiet_until.get(index, -np.inf):
                    self.runs[index] = [end, end, probability, 1]
            elif run is not None:
                closed.append(self._close(index))
        return closed

    def finish(self):
        """The events still open when the stream ends."""
        return [self._close(index) for index in list(self.runs)]

    def _close(self, index):
        first, last, score, hops = self.runs.pop(index)
        self.quiet_until[index] = last + self.refractory
        middle = (first + last) / 2
        return {"label": self.labels[index], "start": round(middle - self.window, PLACES),
                "end": round(middle, PLACES), "score": round(score, PLACES), "detected": round(first, PLACES),
                "hops": hops}


def pcm_blocks(binary, samples_per_block):
    """Float32 blocks of raw 16-bit little-endian mono PCM read from the binary file ``binary`` (e.g.
    standard input), each as soon as its bytes have arrived; a last odd byte is dropped."""
    wanted = 2 * int(samples_per_block)
    carry = b""
    while True:
        data = binary.read(wanted - len(carry))
        if not data:
            break
        data, carry = carry + data, b""
        if len(data) % 2:
            data, carry = data[:-1], data[-1:]
        if data:
            yield np.frombuffer(data, "<i2").astype(np.float32) / 32768.0


def stream_events(stream, blocks, detector, timeline=None):
    """Run ``stream`` (:mod:`coughclf.streaming.runner`) over the audio ``blocks`` and yield each event of
    ``detector`` as it closes; ``timeline``, a list, gets ``(start s, end s, probabilities)`` per hop."""
    from coughclf.streaming.runner import hop_outputs

    rate = stream.metadata["sample_rate"]
    window = stream.metadata["clip_samples"] / rate
    for end, probabilities in hop_outputs(stream, blocks):
        seconds = end / rate
        if timeline is not None:
            timeline.append((max(seconds - window, 0.0), seconds, np.asarray(probabilities, np.float32)))
        yield from detector.update(seconds, probabilities)
    yield from detector.finish()
