"""PARPY_TEST_LOG (conftest.py): each test's outcome is written to the log as the test ends."""

import os
import pathlib
import subprocess
import sys
import textwrap

from common import child_timeout


def child_env(**settings):
    """This process's environment without the outer run's test-selection settings (a sanitizer
    run's PARPY_TEST_SKIP, _CUT, _SHARD and _LOG), with `settings` added."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PARPY_TEST_SKIP", "PARPY_TEST_CUT", "PARPY_TEST_SHARD", "PARPY_TEST_LOG")}
    env.update(settings)
    return env


def run_sample(tmp_path, log, **settings):
    """Runs tmp_path/test_sample.py in a child pytest, logging to `log`, with `settings` in its
    environment: the finished process and the tests the log records as passed."""
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                        str(tmp_path / "test_sample.py")], cwd=tmp_path,
                       env=child_env(PARPY_TEST_LOG=str(log), **settings), capture_output=True, text=True,
                       timeout=child_timeout(300))
    ran = [line.split(" ", 2)[2] for line in log.read_text().splitlines() if line.startswith("passed ")] \
        if log.exists() else []
    return r, ran


def test_outcomes_are_logged_as_tests_end(tmp_path):
    here = pathlib.Path(__file__).parent
    (tmp_path / "conftest.py").write_text((here / "conftest.py").read_text())
    (tmp_path / "test_sample.py").write_text(textwrap.dedent("""
        import pytest

        def test_passes():
            assert 1 + 1 == 2

        def test_fails():
            assert [1, 2] == [1, 3], "the marker of this failure"

        @pytest.mark.skip(reason="skipped on purpose")
        def test_skipped():
            pass
    """))
    log = tmp_path / "tests.log"
    env = child_env(PARPY_TEST_LOG=str(log))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                        str(tmp_path / "test_sample.py")], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=child_timeout(300))
    assert r.returncode == 1, r.stdout + r.stderr
    lines = log.read_text().splitlines()
    assert lines[0].startswith("collected ") and " 3 tests in " in lines[0], lines
    # Each test's start, then its outcome.
    started = [line for line in lines[1:] if line.startswith("started ")]
    assert [line.split(" ", 1)[1] for line in started] == [
        f"test_sample.py::test_{name}" for name in ("passes", "fails", "skipped")], lines
    assert lines.index(started[1]) > lines.index(next(x for x in lines if x.startswith("passed "))), lines
    starts = [line for line in lines[1:] if not line.startswith("    ") and not line.startswith("started ")]
    assert len(starts) == 3, lines
    assert starts[0].startswith("passed ") and starts[0].endswith("test_sample.py::test_passes")
    assert starts[1].startswith("failed ") and starts[1].endswith("test_sample.py::test_fails")
    assert starts[2].startswith("skipped ") and starts[2].endswith("test_sample.py::test_skipped")
    assert any("the marker of this failure" in line for line in lines)


def test_tests_in_a_skip_log_are_deselected(tmp_path):
    here = pathlib.Path(__file__).parent
    (tmp_path / "conftest.py").write_text((here / "conftest.py").read_text())
    (tmp_path / "test_sample.py").write_text(textwrap.dedent("""
        import time

        import pytest

        @pytest.fixture
        def slow():
            time.sleep(0.6)

        def test_one():
            pass

        def test_two(slow):
            pass

        def test_three():
            pass

        @pytest.mark.parametrize("v", ["a b", "c d"])
        def test_four(v):
            pass
    """))
    done = tmp_path / "done.log"
    # test_two and test_four[c d] started and did not end (a cut run): they run again.
    done.write_text("started test_sample.py::test_one\npassed 0.1s+3.5s test_sample.py::test_one\n"
                    "started test_sample.py::test_two\n"
                    "failed 2.0s test_sample.py::test_three\n    assert 0\n"
                    "passed 0.2s test_sample.py::test_four[a b]\nstarted test_sample.py::test_four[c d]\n")
    log = tmp_path / "tests.log"
    env = child_env(PARPY_TEST_LOG=str(log), PARPY_TEST_SKIP=str(done))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                        str(tmp_path / "test_sample.py")], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=child_timeout(300))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 passed, 3 deselected" in r.stdout, r.stdout
    lines = [line.split(" ", 2) for line in log.read_text().splitlines()
             if not line.startswith("collected ") and not line.startswith("started ")]
    assert [line[2] for line in lines] == ["test_sample.py::test_two", "test_sample.py::test_four[c d]"]
    assert "+" in lines[0][1] and "+" not in lines[1][1], lines  # the slow fixture's setup time


def test_tests_a_time_limit_cut_are_deselected_or_run_alone(tmp_path):
    # PARPY_TEST_CUT: "skip" leaves out the tests a skip log records as started and never ended as
    # well; "only" runs those alone.
    here = pathlib.Path(__file__).parent
    (tmp_path / "conftest.py").write_text((here / "conftest.py").read_text())
    (tmp_path / "test_sample.py").write_text(textwrap.dedent("""
        def test_ended():
            pass

        def test_cut():
            pass

        def test_new():
            pass
    """))
    done = tmp_path / "done.log"
    done.write_text("started test_sample.py::test_ended\npassed 0.1s test_sample.py::test_ended\n"
                    "started test_sample.py::test_cut\n")

    def run(cut):
        return run_sample(tmp_path, tmp_path / f"tests-{cut}.log", PARPY_TEST_SKIP=str(done), PARPY_TEST_CUT=cut)

    r, ran = run("")
    assert r.returncode == 0 and ran == ["test_sample.py::test_cut", "test_sample.py::test_new"], r.stdout
    r, ran = run("skip")
    assert r.returncode == 0 and ran == ["test_sample.py::test_new"], r.stdout
    r, ran = run("only")
    assert r.returncode == 0 and ran == ["test_sample.py::test_cut"], r.stdout
    r, _ = run("all")
    assert r.returncode != 0 and "PARPY_TEST_CUT is 'all'" in r.stdout + r.stderr, r.stdout + r.stderr
    env = child_env(PARPY_TEST_CUT="only")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                        str(tmp_path / "test_sample.py")], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=child_timeout(300))
    assert r.returncode != 0 and "set PARPY_TEST_SKIP" in r.stdout + r.stderr, r.stdout + r.stderr


def test_shards_split_the_suite(tmp_path):
    # PARPY_TEST_SHARD=i/k: k processes run disjoint parts of what is left after PARPY_TEST_SKIP,
    # together all of it.
    here = pathlib.Path(__file__).parent
    (tmp_path / "conftest.py").write_text((here / "conftest.py").read_text())
    names = [f"t{n}" for n in range(7)]
    (tmp_path / "test_sample.py").write_text("".join(f"def test_{name}():\n    pass\n\n" for name in names))
    done = tmp_path / "done.log"
    done.write_text("passed 0.1s test_sample.py::test_t2\n")

    def run(shard):
        return run_sample(tmp_path, tmp_path / f"tests-{shard.replace('/', '-')}.log", PARPY_TEST_SKIP=str(done),
                          PARPY_TEST_SHARD=shard)

    parts = []
    for i in range(3):
        r, ran = run(f"{i}/3")
        assert r.returncode == 0, r.stdout + r.stderr
        parts.append(ran)
    assert sorted(t for part in parts for t in part) == [f"test_sample.py::test_{n}" for n in names if n != "t2"]
    assert [len(part) for part in parts] == [2, 2, 2], parts
    for bad in ("3/3", "1", "a/b"):
        r, _ = run(bad)
        assert r.returncode != 0 and "PARPY_TEST_SHARD is" in r.stdout + r.stderr, r.stdout + r.stderr
