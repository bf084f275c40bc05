from labrunner.run.progress import Progress


def test_output_that_does_not_advance_is_not_progress():
    p = Progress()
    assert p.stalled_for(100.0) is None  # no progress line yet: judged by output alone
    p.feed("progress vm_cycles=10 vcpu_runs=20 errors=0", 0.0)
    p.feed("some other output", 30.0)
    p.feed("progress vm_cycles=10 vcpu_runs=20 errors=0", 40.0)  # printed, but nothing moved
    assert p.stalled_for(60.0) == 60.0
    p.feed("progress vm_cycles=11 vcpu_runs=20 errors=0", 61.0)
    assert p.stalled_for(70.0) == 9.0 and p.describe() == "vm_cycles=11 vcpu_runs=20 errors=0"


def test_a_new_counter_or_a_malformed_line():
    p = Progress()
    p.feed("progress a=1", 0.0)
    p.feed("progress a=1 b=0", 5.0)  # a counter that appears counts as movement
    assert p.stalled_for(5.0) == 0.0
    p.feed("progress a=x", 50.0)
    p.feed("progressive a=2", 50.0)
    assert p.stalled_for(50.0) == 45.0
