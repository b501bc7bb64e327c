"""The busy-machine check of the comparison's throughput probe: other processes' CPU time, not ours."""

import subprocess
import sys
import time

from deeppose.train.cpuload import CpuSample, cpu_sample, other_cores


def test_other_cores_subtracts_our_own_time():
    before, after = CpuSample(10.0, 4.0, 100.0), CpuSample(16.0, 7.0, 102.0)
    assert other_cores(before, after) == 1.5  # (6 s machine - 3 s ours) over 2 s
    assert other_cores(before, CpuSample(13.0, 7.0, 102.0)) == 0.0  # never negative
    assert other_cores(before, before) == 0.0


def test_a_busy_process_beside_us_is_seen():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it start
        before = cpu_sample()
        time.sleep(1.5)
        cores = other_cores(before, cpu_sample())
    finally:
        busy.kill()
        busy.wait()
    assert cores > 0.4  # about one core on an idle machine, two thirds beside a 2-thread job on 2 cores


def test_our_own_time_is_counted_as_ours():
    before = cpu_sample()
    end = time.perf_counter() + 1.0
    while time.perf_counter() < end:
        pass
    after = cpu_sample()
    assert after.own - before.own > 0.3 and after.system_busy - before.system_busy >= after.own - before.own - 0.05
