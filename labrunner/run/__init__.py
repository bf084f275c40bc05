"""run: one test on one kernel, from boot to verdict, written to a results folder (run.json and logs).

- runner: boots a session, starts the workload and the hotplug schedule, watches the console for
  reports and hangs, and records the verdict.

May import: machine, build, config, analysis, errors, process. Nightlies, bisection and reports build
on runs and live above this part.
"""
