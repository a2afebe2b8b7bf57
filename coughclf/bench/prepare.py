"""Prepare speed and peak memory at 1x and 3x the clips of a dataset (FSDD by default).

Each run prepares into a fresh temporary cache in its own child process
(``python -m coughclf.bench.prepare``), so the memory measured is that run's
alone. The 3x run lists every file three times under different ids: three times
the clips and the bytes written, the same files.

While a run goes, this process samples the child's process tree from ``/proc``
every 50 ms. The peak reported is the writer's resident size plus the private
memory (USS) of its decoding workers: the workers are forked from the writer and
share its pages, which a plain sum of resident sizes (also reported, as an upper
bound) would count once per worker. PSS is not used: on a machine where other
programs map the same TensorFlow libraries it divides those pages among them too
and understates the run's memory. Each child also reports the kernel's own peak
resident size of the writer and of its largest worker (``getrusage``), and its
resident size right after importing TensorFlow (the shard writer), before any
clip: the floor that the peak sits on.

TensorFlow is imported before the clock starts, so clips/s is the steady rate of
decoding and writing.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HELP = "prepare speed (clips/s) and peak memory at 1x and 3x the clips of FSDD: memory must not grow"
LIMIT_MIB = 1024
SAMPLE_SECONDS = 0.05


def add_arguments(parser):
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/fsdd"),
                        help="the dataset's folder (default ../shared/data/fsdd)")
    parser.add_argument("--dataset", default="fsdd", help="registered dataset name (default fsdd)")
    parser.add_argument("--multiples", type=int, nargs="+", default=[1, 3],
                        help="how many times to list every clip, one run each (default 1 3)")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: all CPUs)")


def run(args):
    from coughclf.errors import CoughclfError

    if not Path(args.data_dir).is_dir():
        raise CoughclfError(f"data folder {args.data_dir} not found; give the {args.dataset} folder with --data-dir")
    results = {"dataset": args.dataset, "data_dir": str(Path(args.data_dir).resolve()), "cpu_cores": os.cpu_count(),
               "workers": args.workers or os.cpu_count(), "load_average_before": round(os.getloadavg()[0], 2),
               "runs": {}}
    for multiple in args.multiples:
        results["runs"][f"{multiple}x"] = _measured_run(args.dataset, args.data_dir, multiple, args.workers)
    peaks = [run["peak_memory_mib"] for run in results["runs"].values()]
    results["peak_memory_mib"] = max(peaks)
    results["peak_growth"] = round(peaks[-1] / peaks[0], 3)
    results["under_limit"] = max(peaks) < LIMIT_MIB
    results["limit_mib"] = LIMIT_MIB
    results["load_average_after"] = round(os.getloadavg()[0], 2)
    return results


def _measured_run(dataset, data_dir, multiple, workers):
    with tempfile.TemporaryDirectory(prefix="coughclf-bench-prepare-") as scratch:
        command = [sys.executable, "-m", "coughclf.bench.prepare", dataset, str(Path(data_dir).resolve()),
                   str(Path(scratch) / "cache"), str(multiple), str(workers or 0)]
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        sampler = _TreeMemorySampler(child.pid)
        sampler.start()
        output, errors = child.communicate()
        sampler.stop()
    if child.returncode != 0:
        from coughclf.errors import CoughclfError

        last = errors.strip().splitlines()[-1] if errors.strip() else f"exit status {child.returncode}"
        raise CoughclfError(f"the {multiple}x prepare run failed ({last}); run it by hand to see why: "
                            f"{' '.join(command)}")
    result = json.loads(output.strip().splitlines()[-1])
    result.update(peak_memory_mib=round(sampler.peak_tree_kib / 1024, 1),
                  peak_rss_sum_mib=round(sampler.peak_rss_sum_kib / 1024, 1),
                  peak_processes=sampler.peak_processes)
    return result


class _TreeMemorySampler(threading.Thread):
    """Samples a process tree's memory from /proc: the root's RSS plus its descendants' USS."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_tree_kib = self.peak_rss_sum_kib = self.peak_processes = 0
        self._stopped = threading.Event()

    def run(self):
        while not self._stopped.is_set():
            root, *descendants = _process_tree(self.pid)
            rss = {pid: _kib(f"/proc/{pid}/status", ("VmRSS:",)) for pid in (root, *descendants)}
            private = sum(_kib(f"/proc/{pid}/smaps_rollup", ("Private_Clean:", "Private_Dirty:"))
                          for pid in descendants)
            self.peak_tree_kib = max(self.peak_tree_kib, rss[root] + private)
            self.peak_rss_sum_kib = max(self.peak_rss_sum_kib, sum(rss.values()))
            self.peak_processes = max(self.peak_processes, 1 + len(descendants))
            self._stopped.wait(SAMPLE_SECONDS)

    def stop(self):
        self._stopped.set()
        self.join()


def _process_tree(root):
    children = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as handle:
                    # The command name (in parentheses) may hold spaces; the parent pid follows it.
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    tree, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        tree.append(pid)
        frontier.extend(children.get(pid, ()))
    return tree


def _kib(path, fields):
    """The sum of the kB values of ``fields`` in a /proc file (0 once the process is gone)."""
    try:
        with open(path) as handle:
            return sum(int(line.split()[1]) for line in handle if line.startswith(fields))
    except OSError:  # the process ended between listing and reading
        return 0


def _prepare_in_child(dataset, data_dir, out, multiple, workers):
    """The measured run: list the dataset ``multiple`` times under new ids and prepare it."""
    import dataclasses
    import resource

    import tensorflow  # noqa: F401  (imported before the clock starts: see the module docstring)

    after_import_mib = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    from coughclf import datasets
    from coughclf.prepare import prepare_clips

    listed = datasets.get(dataset).list_clips(Path(data_dir))
    clips = [dataclasses.replace(clip, id=f"copy{copy}/{clip.id}") for copy in range(multiple) for clip in listed]
    started = time.perf_counter()
    summary = prepare_clips(clips, out, dataset_name=dataset, data_dir=data_dir, workers=workers or None,
                            progress=False)
    seconds = time.perf_counter() - started
    print(json.dumps({
        "clips": len(clips),
        "prepared": summary["clips"],
        "skipped": summary["skipped"],
        "seconds": round(seconds, 2),
        "clips_per_second": round(len(clips) / seconds, 1),
        "rss_after_tensorflow_import_mib": after_import_mib,
        "writer_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "largest_worker_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    dataset_name, data_folder, out_folder, times, worker_count = sys.argv[1:6]
    _prepare_in_child(dataset_name, data_folder, out_folder, int(times), int(worker_count))
