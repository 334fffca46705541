"""The bench header's CPU steal note: what a reader of bench/results.md uses to judge whether a
run's absolute figures came from a quiet or a contended shared machine."""

from bench.__main__ import steal_note


def test_the_share_of_busy_time_the_hypervisor_gave_to_other_guests_is_reported() -> None:
    # user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice (ticks)
    before = [1000, 0, 100, 5000, 10, 0, 20, 300, 0, 0]
    after = [1500, 0, 150, 9000, 20, 0, 50, 570, 0, 0]  # busy 500+50+30 = 580, stolen 270
    assert steal_note(before, after).strip() == (
        "CPU steal (time the hypervisor ran other guests) 32% of busy time."
    )


def test_no_note_without_proc_stat_or_without_busy_time() -> None:
    assert steal_note(None, [1] * 10) == ""
    same = [1000, 0, 100, 5000, 10, 0, 20, 300, 0, 0]
    assert steal_note(same, list(same)) == ""
