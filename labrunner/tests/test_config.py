import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labrunner import config
from labrunner.errors import ConfigError

from .conftest import GOOD


def error_of(write_lab, text) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        config.load(write_lab(text))
    return e.value


def test_good_config_loads_with_defaults(write_lab):
    lab = config.load(write_lab(GOOD))
    m = lab.machines["default"]
    assert (m.cpus, m.max_cpus, m.memory_mib, m.machine_type) == (2, 4, 1024, "q35")
    assert m.cpu_model == {"kvm": "host", "tcg": "max"}
    assert lab.kernels["k"].kind == "path" and lab.kernels["k"].path.name == "bzImage"
    t = lab.tests["smoke"]
    assert (t.duration, t.timeouts.boot, t.machine) == (5, 300, None)
    assert lab.pick("tests", None) is t


def test_the_repository_lab_yaml_is_valid():
    from .conftest import REPO
    lab = config.load(REPO / "lab.yaml")
    assert lab.defaults.test in lab.tests


def test_unknown_key_names_line_path_and_suggestion(write_lab):
    e = error_of(write_lab, GOOD.replace("    max_cpus: 4", "    max_cpu: 4"))
    assert e.line == 6
    assert e.key == "machines.default.max_cpu"
    assert "did you mean 'max_cpus'" in str(e)
    assert str(e).startswith(f"{e.path}:6: machines.default.max_cpu: unknown key")


def test_wrong_type_names_its_line(write_lab):
    e = error_of(write_lab, GOOD.replace("    cpus: 2", "    cpus: two"))
    assert (e.line, e.key) == (5, "machines.default.cpus")
    assert "expected an integer, got a string" in str(e)


def test_bad_yaml_names_its_line(write_lab):
    e = error_of(write_lab, GOOD.replace("  accel: auto", "  accel: [auto"))
    assert e.line in (2, 3)
    assert "invalid YAML" in str(e)


def test_missing_kernel_file(write_lab):
    e = error_of(write_lab, GOOD.replace("path: bzImage", "path: nowhere/bzImage"))
    assert (e.line, e.key) == (10, "kernels.k.path")
    assert "does not exist" in str(e)


def test_duplicate_key(write_lab):
    e = error_of(write_lab, GOOD.replace("    cpus: 2\n", "    cpus: 2\n    cpus: 3\n"))
    assert e.line == 6 and "duplicate key (first at line 5)" in str(e)


def test_bad_choice_and_bad_size(write_lab):
    assert "must be one of auto, kvm, tcg" in str(error_of(write_lab, GOOD.replace("accel: auto", "accel: hvf")))
    assert "expected a size" in str(error_of(write_lab, GOOD.replace("memory: 1G", "memory: lots")))


def test_max_cpus_below_cpus(write_lab):
    e = error_of(write_lab, GOOD.replace("max_cpus: 4", "max_cpus: 1"))
    assert e.key == "machines.default.max_cpus" and "less than cpus" in str(e)


def test_defaults_must_name_existing_entries(write_lab):
    e = error_of(write_lab, GOOD.replace("  test: smoke", "  test: smoek"))
    assert e.key == "defaults.test" and "no test named 'smoek'" in str(e)


def test_test_must_name_existing_machine(write_lab):
    e = error_of(write_lab, GOOD.replace("    duration: 5", "    duration: 5\n    machine: big"))
    assert e.key == "tests.smoke.machine"


def test_kernel_needs_exactly_one_kind(write_lab):
    e = error_of(write_lab, GOOD.replace("    path: bzImage", "    path: bzImage\n    debian_package: linux-image-amd64"))
    assert "exactly one of" in str(e)


def test_a_lab_yaml_adds_to_and_overrides_the_built_in_lab(write_lab, tmp_path):
    """Sections come from the built-in lab; a user's entries add to them or replace them by name."""
    lab = config.load(write_lab(GOOD.split("tests:")[0]))
    assert {"vm-churn-hotplug", "kvm-smoke"} <= set(lab.tests) and lab.images["minimal"].recipe == tmp_path / \
        "images" / "minimal"  # the user's own recipe of that name wins over the built-in one
    assert lab.machines["default"].memory_mib == 1024 and "stable-debug" in lab.kernels
    assert lab.defaults.test == "vm-churn-hotplug" and lab.tests_dirs == (config.builtin.TESTS,)
    (tmp_path / "tests" / "mine").mkdir(parents=True)
    assert config.load(write_lab(GOOD)).tests_dirs == (config.builtin.TESTS, tmp_path / "tests")
    alone = config.load(None)
    assert alone.path == config.builtin.LAB and alone.images["minimal"].recipe == config.builtin.BUILTIN / \
        "images" / "minimal"


def test_built_in_files_by_name(write_lab, tmp_path):
    lab = config.load(write_lab(GOOD.replace("""kernels:
  k:
    path: bzImage
""", """kernels:
  k:
    path: bzImage
  mine:
    source: {debian_package: linux-source-6.12, config: {fragments: [kvm, debug.config, kernels/fragments/slim.config]}}
  mine-bad:
    source: {base: inject-kvm-lock-order, patches: [inject/sleep-in-atomic]}
""")))
    fragments = config.builtin.BUILTIN / "kernels" / "fragments"
    assert lab.kernels["mine"].source.fragments == (fragments / "kvm.config", fragments / "debug.config",
                                                     fragments / "slim.config")
    assert [p.name for p in lab.kernels["mine-bad"].source.patches] == ["kvm-lock-order.patch", "sleep-in-atomic.patch"]
    e = error_of(write_lab, GOOD.replace("  test: smoke", "  test: nope"))
    assert (e.path, e.line, e.key) == (tmp_path / "lab.yaml", 22, "defaults.test")  # the user's own line
    e = error_of(write_lab, GOOD.replace("recipe: images/minimal", "recipe: maximal"))
    assert "maximal has no recipe.yaml" in str(e) and e.line == 13


def test_unknown_entry_name_is_a_clear_error(write_lab):
    lab = config.load(write_lab(GOOD))
    with pytest.raises(ConfigError, match="kernels.nope: no such entry; known: debian-6.1, debian-6.12, .*, k, .*stable-debug"):
        lab.pick("kernels", "nope")


def test_cli_config_check_exits_2_with_one_line(write_lab):
    path = write_lab(GOOD.replace("    memory: 1G", "    memroy: 1G"))
    p = subprocess.run([sys.executable, "-m", "labrunner.cli", "--lab", str(path), "config", "check"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0
    assert f"{path}:7: machines.default.memroy: unknown key (did you mean 'memory'?)" in p.stderr


SOURCE = GOOD.replace("""kernels:
  k:
    path: bzImage
""", """kernels:
  k:
    path: bzImage
  debug:
    source:
      debian_package: linux-source-6.12
      config:
        fragments: [frag.config]
  debug-inject:
    source: {base: debug, patches: [bug.patch]}
""")


def test_source_recipe_and_base(write_lab, tmp_path):
    (tmp_path / "frag.config").write_text("CONFIG_KVM=y\n")
    (tmp_path / "bug.patch").write_text("x")
    lab = config.load(write_lab(SOURCE))
    debug, inject = lab.kernels["debug"].source, lab.kernels["debug-inject"].source
    assert debug.base_config == "x86_64_defconfig" and debug.fragments == (tmp_path / "frag.config",)
    assert inject.patches == (tmp_path / "bug.patch",) and inject.fragments == debug.fragments


def test_missing_patch_names_its_line(write_lab, tmp_path):
    (tmp_path / "frag.config").write_text("CONFIG_KVM=y\n")
    e = error_of(write_lab, SOURCE)
    assert e.key == "kernels.debug-inject.source.patches" and e.line == 17
    assert "bug.patch does not exist" in str(e)


def test_base_must_be_a_source_kernel(write_lab, tmp_path):
    (tmp_path / "frag.config").write_text("CONFIG_KVM=y\n")
    (tmp_path / "bug.patch").write_text("x")
    e = error_of(write_lab, SOURCE.replace("base: debug,", "base: k,"))
    assert "'k' is not a source kernel defined above" in str(e)


def test_a_nul_byte_is_a_located_error(write_lab):
    path = write_lab(GOOD)
    path.write_bytes(path.read_bytes().replace(b"accel: auto", b"accel: au\0to"))
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert e.value.line == 2 and "character '\\x00' is not allowed" in str(e.value) and "\n" not in str(e.value)


def test_more_hotplug_slots_than_spare_cpus(write_lab):
    text = GOOD.replace("    duration: 5", "    duration: 5\n    hotplug:\n      period: 2\n      slots: 3")
    with pytest.raises(ConfigError) as e:
        config.load(write_lab(text))
    assert (e.value.line, e.value.key) == (20, "tests.smoke.hotplug.slots") and "has 2 hot-pluggable" in str(e.value)
    config.load(write_lab(text.replace("slots: 3", "slots: 2")))


def test_a_machine_of_ones_own_too_small_for_a_built_in_hotplug_test_names_its_own_line(write_lab):
    # without max_cpus, the default machine has no spare vCPU for the built-in vm-churn-hotplug test
    path = write_lab(GOOD.replace("    max_cpus: 4\n", ""))
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert str(e.value).startswith(f"{path}:5: machines.default.max_cpus: "), e.value
    assert "test 'vm-churn-hotplug'" in str(e.value), e.value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_mangled_lab_yaml_is_a_one_line_error_or_loads(write_lab, data):
    """Bytes cut, doubled or replaced anywhere in a good file, as a typing user or a bad merge does."""
    text = GOOD
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text) - 1))
        how = data.draw(st.sampled_from(["cut", "double", "replace"]))
        char = data.draw(st.sampled_from(list(":-[]{}#&*!|>'\"%@` \t\n\0\x7fa1")))
        text = {"cut": text[:at] + text[at + 1:], "double": text[:at] + text[at] + text[at:],
                "replace": text[:at] + char + text[at + 1:]}[how]
    path = write_lab("")
    path.write_text(text)
    try:
        config.load(path)
    except ConfigError as e:
        assert "\n" not in str(e) and str(e).startswith(f"{path}"), str(e)


def test_executor_kinds(write_lab):
    lab = config.load(write_lab(GOOD + "executor:\n  kind: dask\n  scheduler: tcp://10.0.0.1:8786\n"))
    assert (lab.scheduler, lab.slots) == ("tcp://10.0.0.1:8786", None)
    assert config.load(write_lab(GOOD + "executor:\n  slots: 2\n")).scheduler is None
    e = error_of(write_lab, GOOD + "executor:\n  kind: dask\n")
    assert e.key == "executor.scheduler" and "tcp://HOST:8786" in str(e)
    e = error_of(write_lab, GOOD + "executor:\n  kind: slurm\n")
    assert e.key == "executor.kind" and "known: local, dask" in str(e)
    e = error_of(write_lab, GOOD + "executor:\n  scheduler: tcp://h:1\n")
    assert e.key == "executor.scheduler" and "kind: dask" in str(e)


def test_selftests_lists_with_timeouts_expected_failures_and_skips(write_lab):
    st = ("    selftests:\n      timeout: 30\n      run:\n        - hardware_disable_test\n"
          "        - {name: x86_64/svm_vmcall_test, args: -v, timeout: 90}\n        - x86_64/amx_test\n"
          "      expect_fail: {hardware_disable_test: needs more CPUs}\n      skip: {x86_64/amx_test: no AMX under TCG}\n")
    with_st = GOOD.replace("    duration: 5\n", "    duration: 5\n" + st)
    got = config.load(write_lab(with_st)).tests["smoke"].selftests
    assert [(t.name, t.args, t.timeout, t.expect_fail, t.skip) for t in got] == [
        ("hardware_disable_test", "", 30, "needs more CPUs", None), ("x86_64/svm_vmcall_test", "-v", 90, None, None),
        ("x86_64/amx_test", "", 30, None, "no AMX under TCG")]
    e = error_of(write_lab, with_st.replace("expect_fail: {hardware_disable_test: needs more CPUs}",
                                            "expect_fail: {hardware_disable_tst: needs more CPUs}"))
    assert e.key == "tests.smoke.selftests.expect_fail.hardware_disable_tst" and "not in the run list" in str(e)
    e = error_of(write_lab, with_st.replace("skip: {x86_64/amx_test: no AMX under TCG}", "skip: {x86_64/amx_test: ''}"))
    assert "give the reason" in str(e)
    e = error_of(write_lab, with_st.replace("- x86_64/amx_test", "- ../../bin/sh"))
    assert e.key == "tests.smoke.selftests.run[2]" and "not a KVM selftest's name" in str(e)
    assert "did you mean 'run'" in str(error_of(write_lab, with_st.replace("      run:\n", "      ru:\n")))


def test_selftests_source_names_a_source_kernel(write_lab):
    lab = config.load(write_lab(GOOD))
    assert lab.kernels["debian-6.12"].selftests_source.name == "stable-debug"  # the built-in lab's
    assert lab.kernels["k"].selftests_source is None
    e = error_of(write_lab, GOOD.replace("    path: ", "    selftests_source: debian-6.1\n    path: ", 1))
    assert e.key == "kernels.k.selftests_source" and "not a source kernel of this lab" in str(e)
