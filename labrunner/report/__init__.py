"""report: what a nightly and a run tell their readers, written into their own folders.

- html: report.html for a person (Jinja2 templates in templates/, self-contained pages);
- timeline: when CPUs came and went, VMs cycled and reports came, for the run page (pure);
- junit: junit.xml for a CI system (junitparser);
- kcidb: kcidb.json for KernelCI, in KCIDB I/O schema 5.3, validated with kcidb-io before writing;
- folders: reading run and nightly folders of any age or state, missing pieces and all.

May import every part below it (config to lab); nothing imports it but the CLI. Reports only read
the folders: a report can be written again at any time, from the folders alone.
"""
