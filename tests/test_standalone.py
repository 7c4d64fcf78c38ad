"""Runs as generated C++ (``target="cpp_standalone"``) against the numpy target.

The numpy target is the reference: the same Brian2 objects, stepped from Python with
numpy code. A generated program evaluates the same expressions in C++ compiled with
``-O3 -ffast-math`` (Brian2's defaults), which may reorder floating-point operations,
so the comparison is to 1e-9 relative (the acceptance bar), not bit for bit. The
same comparisons on Brian2's cython target are in tests/test_cython_target.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
import target_agreement
from brian2 import ms
from helpers import only_under_ci

import ephys_eqprop as eq

pytestmark = pytest.mark.standalone

TOL = 1e-9


def _new_programs(before, count=None):
    """The programs made since the keys ``before`` of ``standalone._PROGRAMS`` were
    taken; ``count``: how many there must be (a network's forward and adjoint: 2)."""
    new = [eq.standalone._PROGRAMS[k] for k in set(eq.standalone._PROGRAMS) - before]
    if count is not None:
        assert len(new) == count, f"{len(new)} new programs, expected {count}"
    return new


@pytest.fixture(autouse=True)
def need_compiler():
    if not eq.targets.cpp_standalone_available():
        pytest.skip("target 'cpp_standalone' needs g++ and make; neither was found")


@pytest.fixture(scope="module")
def dendrite():
    return target_agreement.dendrite()


rel = target_agreement.rel


def test_ci_compiles_standalone():
    # .ci/run sets CI=true; there the standalone tests must run, not skip.
    only_under_ci()
    assert eq.targets.cpp_standalone_available(), "CI needs g++ and make"


@pytest.mark.parametrize("estimator", [eq.Adjoint(), eq.LagrangianEP(beta=1e-2)],
                         ids=["Adjoint", "LagrangianEP"])
def test_time_varying_gradients_and_trajectories_agree_with_numpy(dendrite, estimator):
    """Gradients, the free run's output trajectory and loss, and the state the run leaves
    in the (runtime) objects."""
    err = target_agreement.time_varying(dendrite, estimator, "cpp_standalone", TOL)
    print(f"{estimator!r}: numpy vs cpp_standalone {err:.1e}")


def test_hh_network_gradient_agrees_with_numpy():
    """Node states (gates), exprel rates, chemical synapses with their own states."""
    err = target_agreement.hh_network("cpp_standalone", TOL)
    print(f"HH Adjoint numpy vs cpp_standalone {err:.1e}")


def test_recordings_go_from_program_to_program_as_files(monkeypatch):
    """Large recordings stay the forward program's result files, mapped into memory, and
    the adjoint program reads those files: here every recording (KEEP_BYTES = 0) of an
    HH network — voltages, gates, chemical-synapse states — with the gradient as on
    numpy. The files are removed once the trajectory is freed."""
    import gc

    from ephys_eqprop import standalone

    monkeypatch.setattr(standalone, "KEEP_BYTES", 0)
    handed = []
    file_of = standalone._file_of

    def spy(arr):
        path = file_of(arr)
        if path is not None:
            handed.append(path)
        return path

    monkeypatch.setattr(standalone, "_file_of", spy)
    target_agreement.hh_network("cpp_standalone", TOL)
    # inputs, hidden and output voltages, three gates, two synaptic states at least
    assert len(set(handed)) >= 6, handed
    gc.collect()
    assert not any(os.path.exists(p) for p in handed)
    assert not standalone._KEPT


def test_the_network_loop_reads_the_clock_once_not_every_step():
    """Brian2's network loop (its template, as this Brian2 renders it) reads the CPU
    clock after every step, a system call; the programs read it once after the loop.
    (A Brian2 whose template changed shape fails here rather than silently keeping the
    per-step call.) Their results are those of the agreement tests above."""
    from brian2.devices.cpp_standalone.codeobject import CPPStandaloneCodeObject

    from ephys_eqprop.standalone import clock_once

    source = str(CPPStandaloneCodeObject.templater.network(None, None,
                                                           maximum_run_time=None).cpp_file)
    patched = clock_once(source)
    assert patched != source
    assert patched.count("std::clock()") == source.count("std::clock()")
    # from the end of a step's code to the end of the loop (its closing brace)
    start = patched.index("clock = next_clocks();", patched.index("while(clock"))
    step_end = patched[start:patched.index("\n    }\n", start)]
    assert "std::clock()" not in step_end
    with_limit = str(CPPStandaloneCodeObject.templater.network(None, None,
                                                               maximum_run_time=1.0).cpp_file)
    assert clock_once(with_limit) == with_limit  # the limit needs the per-step clock


def _live_servers():
    from ephys_eqprop import standalone

    return [p._server for p in standalone._PROGRAMS.values()
            if p._server is not None and p._server.process.poll() is None]


@pytest.mark.parametrize("estimator", [eq.Adjoint(), eq.LagrangianEP(beta=1e-2)],
                         ids=["Adjoint", "LagrangianEP"])
def test_a_serving_program_runs_as_a_new_process_would(dendrite, estimator, monkeypatch):
    """A compiled program kept running serves one run after another (other inputs,
    other β, recordings of other lengths in between): each gives, bit for bit, what the
    same program started afresh gives; a program killed while idle is started again; with
    room for one serving program, programs take turns."""
    from ephys_eqprop import standalone

    c, x, y = dendrite
    loss = eq.losses.MSE()
    net = c.build(batch=2, dt=0.05 * ms, target="cpp_standalone")
    half = eq.TimeSeries(x.values * 0.5, dt=x.dt)
    short = eq.TimeSeries(x.values[:, :40], dt=x.dt)
    cases = [(x, y), (half, y), (short, eq.TimeSeries(y.values[:, :40], dt=y.dt)), (x, y)]

    def gradients():
        return [estimator.gradient(net, a, b, loss) for a, b in cases]

    served = gradients()
    assert _live_servers(), "no program served its runs"
    monkeypatch.setattr(standalone, "SERVE", False)
    fresh = gradients()
    monkeypatch.setattr(standalone, "SERVE", True)
    for got, want in zip(served, fresh, strict=True):
        assert all(np.array_equal(got[k], want[k]) for k in want)
    assert rel(served[0], served[1]) > 1e-3  # (the inputs made a difference)
    for server in _live_servers():
        server.process.kill()
        server.process.wait()
    monkeypatch.setattr(standalone, "MAX_SERVERS", 1)
    for got, want in zip(gradients() + gradients(), fresh + fresh, strict=True):
        assert all(np.array_equal(got[k], want[k]) for k in want)
    assert len(_live_servers()) == 1


def test_a_serving_program_that_fails_says_why_and_is_replaced(dendrite, tmp_path):
    """A run that makes a serving program exit (here: an argument naming no variable)
    ends that server with the program's own message; the next run starts another."""
    from ephys_eqprop import standalone

    c, x, y = dendrite
    net = c.build(batch=2, dt=0.05 * ms, target="cpp_standalone")
    want = eq.Adjoint().gradient(net, x, y, eq.losses.MSE())
    program = next(p for p in standalone._PROGRAMS.values() if p._server is not None)
    server = program._server
    assert server.call(["--results_dir", f"{tmp_path}/", "no_such.variable=1"]) is None
    assert server.returncode() != 0
    assert "no_such.variable" in server.output()
    got = eq.Adjoint().gradient(net, x, y, eq.losses.MSE())
    assert program._server is not server and program._server.process.poll() is None
    assert all(np.array_equal(got[k], want[k]) for k in want)


def test_a_program_keeps_its_run_directory_and_a_concurrent_run_gets_its_own(dendrite,
                                                                               monkeypatch):
    """Each program reruns in the directory it kept (rewriting the same files; large ones
    removed after each run); a run while the program is busy elsewhere (here: its lock
    held) gets a directory of its own, removed after it, and the same results."""
    import glob

    from ephys_eqprop import standalone

    c, x, y = dendrite
    net = c.build(batch=2, dt=0.05 * ms, target="cpp_standalone")
    standalone._end_servers()  # (other tests' programs drop their directories)
    want = eq.Adjoint().gradient(net, x, y, eq.losses.MSE())
    programs = [p for p in standalone._PROGRAMS.values() if p._scratch is not None]
    kept = {id(p): p._scratch for p in programs}
    assert kept and all(os.path.isdir(d) for d in kept.values())
    root = os.path.dirname(next(iter(kept.values())))

    def own_dirs():
        return set(glob.glob(os.path.join(root, f"ephys_eqprop_p{os.getpid()}_*")))

    before = own_dirs()
    monkeypatch.setattr(standalone, "KEEP_BYTES", 1)  # every file counts as large
    busy = programs[0]
    busy._busy.acquire()
    try:
        got = eq.Adjoint().gradient(net, x, y, eq.losses.MSE())
    finally:
        busy._busy.release()
    assert all(np.array_equal(got[k], want[k]) for k in want)
    assert {id(p): p._scratch for p in programs} == kept
    assert own_dirs() == before  # (the busy program's extra directory is gone)
    for p in programs[1:]:  # (the others ran in theirs, then dropped their files)
        assert not any(os.scandir(os.path.join(p._scratch, "out")))


def test_servers_end_with_their_process(tmp_path):
    """Serving programs read their input until it ends: they end with the process that
    started them, however it ends (here: killed; the files it leaves are swept, as
    tested below)."""
    code = textwrap.dedent("""
        import os, sys, signal
        sys.path.insert(0, %r)
        import target_agreement
        import ephys_eqprop as eq
        from brian2 import ms
        from ephys_eqprop import standalone
        c, x, y = target_agreement.dendrite()
        net = c.build(batch=2, dt=0.05 * ms, target="cpp_standalone")
        eq.Adjoint().gradient(net, x, y, eq.losses.MSE())
        servers = [p._server for p in standalone._PROGRAMS.values() if p._server]
        print(" ".join(str(s.process.pid) for s in servers), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """) % os.path.dirname(__file__)
    # run from elsewhere than the checkout, whose package directory is not importable as is
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, cwd=tmp_path)
    served = out.stdout.split()
    assert served, out.stderr[-2000:]
    for pid in served:
        for _ in range(100):
            if not _exists(int(pid)):
                break
            time.sleep(0.05)
        assert not _exists(int(pid)), f"server {pid} outlived its process"


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (ended, not yet reaped by its new parent) has ended too
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_files_of_processes_that_were_killed_are_removed(tmp_path):
    """Run files of a process that no longer exists (one that was killed while it held
    them) are removed; those of live processes stay."""
    from ephys_eqprop import standalone

    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    dead = int(child.stdout)
    stale = [tmp_path / f"ephys_eqprop_p{dead}_abc.dat", tmp_path / f"ephys_eqprop_p{dead}_d"]
    stale[0].write_bytes(b"0" * 64)
    (stale[1] / "in").mkdir(parents=True)
    mine = tmp_path / f"ephys_eqprop_p{os.getpid()}_abc.dat"
    other = tmp_path / "unrelated.dat"
    for path in (mine, other):
        path.write_bytes(b"0")
    standalone._sweep(str(tmp_path))
    assert not any(p.exists() for p in stale)
    assert mine.exists() and other.exists()


def test_training_never_recompiles_and_ends_where_numpy_ends(dendrite):
    """Epochs change parameters, inputs, targets and batches, never the compiled programs:
    every program is built in the first epoch (forward, adjoint, validation), none after.
    Three epochs on the two targets end with the same conductances."""
    from brian2 import uS, volt

    from ephys_eqprop.dynamics import prepare, simulate

    c, _, _ = dendrite
    x = eq.datasets.multisine(6, tau_omega=1, dt=0.05 * ms, duration=5 * ms, seed=3)
    teacher = eq.datasets.dendrite_circuit(4, seed=1).build(batch=6, dt=0.05 * ms)
    v = simulate(teacher, prepare(teacher, x)).v_out
    y = eq.TimeSeries(np.transpose(v, (1, 0, 2)) * volt, dt=0.05 * ms)
    params, builds = {}, []
    for target in ("numpy", "cpp_standalone"):
        net = c.build(batch=2, dt=0.05 * ms, target=target)
        tr = eq.Trainer(net, eq.Adjoint(), eq.losses.MSE(), eq.Adam(lr=0.05 * uS),
                        progress=False)
        for epoch in (1, 2, 3):
            tr.fit(x[:4], y[:4], epochs=epoch, batch_size=2, validation=(x[4:], y[4:]))
            builds.append(eq.standalone.build_count())
        params[target] = net.get_params()
    print("programs built after each standalone epoch:", builds[3:])
    assert builds[4] == builds[5] == builds[3]
    assert rel(params["numpy"], params["cpp_standalone"]) < TOL


def test_static_training_with_relaxation_ends_where_numpy_ends(rng):
    """A static training epoch program (batches, parameter updates and validation between
    phases) on cpp_standalone: two epochs end at numpy's conductances, and the second
    epoch builds no program."""
    from brian2 import uS, volt

    c = eq.layered(2, [3], 1, g_init=5 * uS, rng=rng, differential_outputs=False,
                   doubled_inputs=False)
    x = rng.uniform(-1, 1, (6, 2)) * volt
    y = rng.uniform(-0.1, 0.1, (6, 1)) * volt
    params, builds = {}, []
    for target in ("numpy", "cpp_standalone"):
        net = c.build(batch=2, target=target)
        tr = eq.Trainer(net, eq.SymmetricEP(beta=1e-2), eq.losses.MSE(g_nudge=1 * uS),
                        eq.Adam(lr=0.5 * uS), progress=False)
        for epoch in (1, 2):
            tr.fit(x[:4], y[:4], epochs=epoch, batch_size=2, validation=(x[4:], y[4:]))
            builds.append(eq.standalone.build_count())
        params[target] = net.get_params()
    assert builds[3] == builds[2]
    assert rel(c.build(batch=2).get_params(), params["numpy"]) > 1e-2  # it trained
    err = rel(params["numpy"], params["cpp_standalone"])
    print(f"static training, numpy vs cpp_standalone conductances: {err:.1e}")
    assert err < TOL


def test_processes_share_the_compiled_programs(tmp_path):
    """The cache is on disk, keyed by the run's structure. Two processes that start at
    once with the same circuit and an empty cache compile it one after the other (a
    lock), not over each other; a later process generates the same sources, and make
    has nothing to recompile or relink, and it leaves the static arrays (which another
    process's program may be reading as it starts) untouched."""
    script = textwrap.dedent("""
        import numpy as np
        from brian2 import ms
        import ephys_eqprop as eq
        c = eq.datasets.dendrite_circuit(4, seed=0)
        x = eq.datasets.multisine(2, tau_omega=1, dt=0.05*ms, duration=5*ms, seed=1)
        y = eq.datasets.multisine(2, tau_omega=1, dt=0.05*ms, duration=5*ms, seed=2,
                                  n_channels=1)
        net = c.build(batch=2, dt=0.05*ms, target="cpp_standalone")
        g = eq.Adjoint().gradient(net, x, y, eq.losses.MSE())
        print(" ".join(p.directory for p in eq.standalone._PROGRAMS.values()))
        print(repr(float(np.asarray(g["x->h"]).sum())))
    """)
    env = dict(os.environ, EPHYS_EQPROP_CACHE=str(tmp_path / "cache"))

    def start():
        # from a neutral folder: in the repository's root "import ephys_eqprop" would find
        # the source tree instead of the installed package
        return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)

    def result(proc):
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        dirs, grad = out.strip().splitlines()[-2:]
        return dirs.split(), grad

    a, b = start(), start()  # both find an empty cache
    (dirs, first), (dirs_b, first_b) = result(a), result(b)
    assert len(dirs) == 2  # the forward program and the adjoint program
    assert dirs_b == dirs and first_b == first
    assert all(d.startswith(str(tmp_path / "cache")) for d in dirs)
    def stamps():
        files = [os.path.join(d, "main") for d in dirs]
        files += [os.path.join(d, "static_arrays", f) for d in dirs
                  for f in sorted(os.listdir(os.path.join(d, "static_arrays")))]
        return {f: os.stat(f).st_mtime_ns for f in files}

    before = stamps()
    assert len(before) > len(dirs)  # (synapse indices, at least)
    again, second = result(start())
    assert again == dirs and second == first
    assert stamps() == before
    # and the numbers are numpy's
    from brian2 import ms
    c = eq.datasets.dendrite_circuit(4, seed=0)
    x = eq.datasets.multisine(2, tau_omega=1, dt=0.05 * ms, duration=5 * ms, seed=1)
    y = eq.datasets.multisine(2, tau_omega=1, dt=0.05 * ms, duration=5 * ms, seed=2,
                              n_channels=1)
    g = eq.Adjoint().gradient(c.build(batch=2, dt=0.05 * ms), x, y, eq.losses.MSE())
    ref = float(np.asarray(g["x->h"]).sum())
    assert abs(float(first) - ref) <= 1e-12 * abs(ref)


def test_static_phases_run_as_generated_programs_and_end_where_numpy_ends(rng):
    """Relaxation phases on cpp_standalone: one program per stretch between settle
    checks, compiled once; every phase ends at numpy's step with numpy's estimate
    (1e-9: same steps and checks, compiled code reorders floating-point operations)."""
    import warnings

    from brian2 import uS, volt

    c = eq.layered(2, [3], 1, g_init=5 * uS, rng=rng, differential_outputs=False,
                   doubled_inputs=False)
    loss = eq.losses.MSE(g_nudge=1 * uS)
    est = {t: eq.SymmetricEP(beta=1e-3) for t in ("numpy", "cpp_standalone")}
    nets = {t: c.build(batch=2, target=t) for t in est}
    for k in range(2):  # a second batch: new values, no new program
        x = rng.uniform(-1, 1, (2, 2)) * volt
        y = rng.uniform(-0.1, 0.1, (2, 1)) * volt
        before = eq.standalone.build_count()
        grads = {}
        with warnings.catch_warnings():
            warnings.simplefilter("error", eq.standalone.StandaloneFallbackWarning)
            for t in est:
                grads[t] = est[t].gradient(nets[t], x, y, loss)
        err = rel(grads["numpy"], grads["cpp_standalone"])
        print(f"static relaxation, numpy vs cpp_standalone: {err:.1e}")
        assert err < TOL
        steps = {t: {n: p.report.steps for n, p in est[t].info.phases.items()} for t in est}
        assert steps["numpy"] == steps["cpp_standalone"], steps
        assert min(steps["numpy"].values()) > 10  # phases of several checks
        if k:
            assert eq.standalone.build_count() == before
    for name in ("h1", "y"):
        a, b = (np.asarray(nets[t].voltages(name)) for t in est)
        assert np.max(abs(a - b)) <= TOL * np.max(abs(a))


@pytest.mark.slow
def test_openmp_threads_give_the_same_gradient(dendrite):
    """build(threads=2): the programs are compiled with OpenMP (its own programs, since the
    thread count is part of the structure) and agree with numpy."""
    c, x, y = dendrite
    loss = eq.losses.MSE()
    ref = eq.Adjoint().gradient(c.build(batch=2, dt=0.05 * ms, target="numpy"), x, y, loss)
    got = eq.Adjoint().gradient(c.build(batch=2, dt=0.05 * ms, target="cpp_standalone",
                                        threads=2), x, y, loss)
    assert rel(ref, got) < TOL
    makefiles = [os.path.join(p.directory, "makefile")
                 for p in eq.standalone._PROGRAMS.values() if p.threads == 2]
    assert makefiles and all("fopenmp" in open(f).read() for f in makefiles)


def test_a_users_monitor_records_the_generated_run(dendrite):
    """A StateMonitor a user adds to net.network is part of the generated program, and its
    recording lands in the user's (runtime) monitor, as on numpy."""
    from brian2 import StateMonitor

    c, x, y = dendrite
    rec = {}
    for target in ("numpy", "cpp_standalone"):
        net = c.build(batch=2, dt=0.05 * ms, target=target)
        mon = StateMonitor(net.groups["h"], "v", record=[0, 3])
        net.network.add(mon)
        for _ in range(2):  # a second gradient appends to the recording, with its times
            eq.Adjoint().gradient(net, x, y, eq.losses.MSE())
        rec[target] = (np.asarray(mon.t_), np.asarray(mon.v_), float(net.network.t))
    (t_np, v_np, end_np), (t_sa, v_sa, end_sa) = rec["numpy"], rec["cpp_standalone"]
    assert v_np.shape == v_sa.shape == (2, 200)
    np.testing.assert_allclose(t_sa, t_np, rtol=0, atol=1e-12)
    assert end_sa == pytest.approx(end_np, abs=1e-12)
    assert np.max(abs(v_np - v_sa)) <= TOL * np.max(abs(v_np))


def test_what_a_users_code_writes_comes_back_and_nothing_else_is_read(dendrite):
    """Only what a program's code may change is read back after a run (integrated states,
    summed-variable targets, what code runners assign): a user's run_regularly is part
    of the generated program, the parameter it writes comes back as on numpy, and
    parameters no code writes are not read at all, nor written by the program."""
    from brian2 import NeuronGroup, StateMonitor

    from ephys_eqprop import standalone

    c, x, y = dendrite
    out = {}
    for target in ("numpy", "cpp_standalone"):
        net = c.build(batch=2, dt=0.05 * ms, target=target)
        extra = NeuronGroup(3, "dv/dt = (a - v)/ms : 1\na : 1\nb : 1", method="euler",
                            dt=0.05 * ms)
        extra.b = "i"
        extra.run_regularly("a += 1", dt=1 * ms)
        net.network.add(extra)
        with warnings.catch_warnings():  # (generated, not fallen back to the runtime)
            warnings.simplefilter("error", standalone.StandaloneFallbackWarning)
            eq.Adjoint().gradient(net, x, y, eq.losses.MSE())
        out[target] = (np.array(extra.v[:]), np.array(extra.a[:]), np.array(extra.b[:]))
        ordered = standalone._ordered([o for o in net.network.objects if o.active])
        written = dict(zip((o.name for o in ordered), standalone._written(ordered),
                           strict=True))
    for got, want in zip(out["cpp_standalone"], out["numpy"], strict=True):
        np.testing.assert_allclose(got, want, rtol=TOL)
    assert out["numpy"][1][0] > 0
    assert set(written[extra.name]) == {"v", "a"}
    # and a program writes no other file at its end (Brian2's writes every array)
    programs = [p for p in standalone._PROGRAMS.values() if p._scratch is not None]
    assert programs
    for p in programs:
        files = set(os.listdir(os.path.join(p._scratch, "out"))) - {"last_run_info.txt"}
        read = {p.device.get_array_filename(clone.variables[name])
                for clone, names in zip(p.clones, p.written, strict=True)
                for name in [*names, *(["t", *clone.record_variables]
                                       if isinstance(clone, StateMonitor) else [])]}
        every = {p.device.get_array_filename(var) for var in p.device.arrays}
        if p.packs:  # (the changed state, in one file: packed_results)
            files -= {standalone.PACK_FILE}
            read -= {p.device.get_array_filename(p.clones[k].variables[name])
                     for k, name in p.packed}
        assert files <= read < every, (files - read, len(every))


def _counter(calls: list):
    return lambda: calls.append(1)


@pytest.mark.parametrize("extra", ["network_operation", "spiking group"])
def test_what_a_program_cannot_run_falls_back_to_the_runtime_target_and_says_why(dendrite,
                                                                                 extra):
    """A Python network operation, or a group with a threshold and reset, added by a user:
    the run is not generated (its program would silently skip them) but runs on the
    runtime target, with a warning naming why, and gives what numpy gives."""
    from brian2 import NeuronGroup, network_operation

    c, x, y = dendrite
    out = {}
    for target in ("numpy", "cpp_standalone"):
        net = c.build(batch=2, dt=0.05 * ms, target=target)
        if extra == "network_operation":
            calls = []
            obj = network_operation(_counter(calls), dt=1 * ms)
        else:
            obj = NeuronGroup(1, "dv/dt = 1/ms : 1\nn : 1", threshold="v > 1",
                              reset="v = 0; n += 1", method="euler", dt=0.05 * ms)
        net.network.add(obj)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            grad = eq.Adjoint().gradient(net, x, y, eq.losses.MSE())
        said = [str(w.message) for w in seen
                if issubclass(w.category, eq.standalone.StandaloneFallbackWarning)]
        if target == "numpy":
            assert not said
        else:
            why = "Python code" if extra == "network_operation" else "threshold, reset"
            assert said and all(why in m for m in said), said
        count = len(calls) if extra == "network_operation" else float(obj.n[0])
        out[target] = (grad, count)
    (g_np, n_np), (g_sa, n_sa) = out["numpy"], out["cpp_standalone"]
    assert n_np > 0 and n_sa == n_np
    assert rel(g_np, g_sa) <= TOL


def _alive(make_garbage, rounds: int = 4, frozen: bool = False) -> list:
    """Brian2 monitors and TimedArray objects alive after each of ``rounds`` calls of
    ``make_garbage()``, with the cycle collector off (the caller may freeze the objects
    that exist before each call, as runtime runs do around Brian2's runs)."""
    import gc

    from brian2 import StateMonitor, TimedArray

    alive = []
    gc.disable()
    try:
        for _ in range(rounds):
            if frozen:
                gc.freeze()
            try:
                make_garbage()
            finally:
                gc.unfreeze()
            # (type, not isinstance: a weak proxy to a dead object cannot be asked)
            alive.append(sum(type(o) in (StateMonitor, TimedArray) for o in gc.get_objects()))
    finally:
        gc.enable()
    return alive


def test_the_package_runs_leave_nothing_for_the_cycle_collector(dendrite, monkeypatch):
    """Gradients (here with a SynapticMonitor attached, so that the adjoint run also
    records) leave no Brian2 objects in reference cycles: their code runners and
    recorders are made once and reused, their waveforms are plain arrays (Waveform),
    and what a generated program's clones hold is not re-made per run."""
    from ephys_eqprop import standalone

    c, x, y = dendrite
    net = c.build(batch=2, dt=0.05 * ms, target="cpp_standalone")
    eq.SynapticMonitor(net, "h->h")
    loss, est = eq.losses.MSE(), eq.Adjoint()
    est.gradient(net, x, y, loss)  # compiled, cached
    monkeypatch.setattr(standalone, "GC_THRESHOLD_BYTES", 2**62)  # never collect
    alive = _alive(lambda: est.gradient(net, x, y, loss))
    assert alive[-1] == alive[0], alive


@pytest.mark.parametrize("threshold, bounded, frozen",
                         [(0, True, False), (0, True, True), (2**62, False, False)],
                         ids=["collected", "collected, the caller froze the objects",
                              "never collected"])
def test_past_runs_timed_arrays_are_collected_past_the_threshold(dendrite, monkeypatch,
                                                                 threshold, bounded, frozen):
    """A user's TimedArray made for one run sits in a reference cycle (with its own
    implementations) until a collection; standalone runs collect once past runs have
    read GC_THRESHOLD_BYTES. With a threshold of 0 the objects alive stay those of one
    run, also when the caller froze the objects that existed: the collection thaws
    them. Without collections they pile up, run after run."""
    from brian2 import TimedArray, volt
    from brian2.groups.group import CodeRunner

    from ephys_eqprop import standalone

    c, _, _ = dendrite
    net = c.build(batch=2, dt=0.05 * ms, target="cpp_standalone")
    x = net.groups["x"]
    net.network.add(CodeRunner(x, "stateupdate", code="v = ta_user(t - t_start, i)",
                               when="start", clock=x.clock))

    def run():
        values = np.ones((20, len(x))) * 0.1 * volt
        net.run(1 * ms, namespace={"ta_user": TimedArray(values, dt=0.05 * ms),
                                   "t_start": net.network.t})

    run()  # compiled, cached
    np.testing.assert_allclose(np.asarray(x.variables["v"].get_value()), 0.1)
    monkeypatch.setattr(standalone, "GC_THRESHOLD_BYTES", threshold)
    alive = _alive(run, frozen=frozen)
    assert (alive[-1] == alive[0]) == bounded, alive


def test_run_files_go_to_disk_when_shared_memory_is_short(dendrite, monkeypatch):
    """A run whose files would not fit in /dev/shm (small in containers) writes them to
    the temporary directory instead; the gradient is the same."""
    from ephys_eqprop import standalone

    c, x, y = dendrite
    loss, est = eq.losses.MSE(), eq.Adjoint()
    net = c.build(batch=2, dt=0.05 * ms, target="cpp_standalone")
    ref = est.gradient(net, x, y, loss)
    needed = []
    real = standalone._scratch_root

    def spy(n):
        needed.append(n)
        return real(n)

    monkeypatch.setattr(standalone, "_scratch_root", spy)
    est.gradient(net, x, y, loss)
    assert len(needed) == 2 and min(needed) > 0  # forward and adjoint programs
    assert real(2**62) is None  # no memory holds that much
    monkeypatch.setattr(standalone, "_scratch_root", lambda n: real(2**62))
    assert rel(ref, est.gradient(net, x, y, loss)) == 0


def _diode_problem(g_in=None, g_out=None):
    """Diode neurons (those of benchmarks/adjoint_vs_jax.py) between two inputs and
    capacitor outputs (``g_in``, ``g_out`` in µS: by default two neurons, one output;
    100 steps): loops over neurons that evaluate ``exp``."""
    from brian2 import mV, nA, nF, uS, volt

    g_in = np.array([[20.0, 30.0], [10.0, 0.0]]) if g_in is None else g_in
    g_out = np.array([[5.0], [7.0]]) if g_out is None else g_out
    n_hidden, n_out = g_out.shape
    c = eq.Circuit()
    c.add_input("x", 2)
    c.add_nodes("h", n_hidden, eq.models.DiodeNeuron(
        C=1 * nF, g_leak=1 * uS, V_low=-0.2 * volt, V_high=0.2 * volt, I_s=1 * nA,
        V_T=50 * mV))
    c.add_nodes("y", n_out, eq.models.CapacitorNode(C=1 * nF, g_leak=1 * uS))
    c.connect("x", "h", eq.models.Resistor(), g=g_in * uS)
    c.connect("h", "y", eq.models.Resistor(), g=g_out * uS)
    c.set_output("y")
    x = eq.datasets.multisine(2, tau_omega=1, dt=0.01 * ms, duration=1 * ms, seed=4,
                              peak=400 * mV)
    y = eq.datasets.multisine(2, tau_omega=1, dt=0.01 * ms, duration=1 * ms, seed=5,
                              n_channels=n_out)
    return c, x, y


@pytest.mark.skipif(not (sys.platform.startswith("linux") and os.uname().machine == "x86_64"),
                    reason="glibc's vector math functions are an x86-64 GNU/Linux feature")
def test_neuron_loops_call_the_vector_exp_and_agree_with_numpy(monkeypatch):
    """With :data:`standalone.VECTOR_MATH` (the default) the compiled loops call glibc's
    vector ``exp``; without it, Brian2's flags leave them calling the scalar one (which
    is why the header exists). Either program's gradient agrees with numpy to 1e-9
    (glibc's vector functions are accurate to 4 ulp), and switching the setting builds
    another program rather than reusing one compiled the other way."""
    from ephys_eqprop import standalone

    c, x, y = _diode_problem()
    loss = eq.losses.MSE()
    ref = eq.Adjoint().gradient(c.build(batch=2, dt=0.01 * ms), x, y, loss)
    symbols = {}
    for vector in (True, False):
        monkeypatch.setattr(standalone, "VECTOR_MATH", vector)
        before = set(standalone._PROGRAMS)
        net = c.build(batch=2, dt=0.01 * ms, target="cpp_standalone")
        err = rel(ref, eq.Adjoint().gradient(net, x, y, loss))
        assert err < TOL, err
        new = _new_programs(before, 2)
        symbols[vector] = set()
        for program in new:
            with open(os.path.join(program.directory, "main"), "rb") as f:
                binary = f.read()
            symbols[vector] |= {s for s in (b"_ZGVdN4v_exp", b"_ZGVbN2v_exp") if s in binary}
        print(f"VECTOR_MATH={vector}: numpy vs cpp_standalone {err:.1e}")
    if not symbols[True]:
        pytest.skip("this compiler or C library has no vector exp")
    assert not symbols[False]


@pytest.mark.skipif(os.name == "nt", reason="kept result files are read, not mapped, on Windows")
def test_the_adjoint_program_maps_the_recorded_trajectory_and_reads_no_static_copy(monkeypatch):
    """A ``TimedArray``'s values, given to the program as a file at every execution,
    are not also loaded from the program's static arrays, and a file of at least
    :data:`standalone.MAP_BYTES` (lowered here so that the 100-step trajectory counts
    as large) is mapped rather than read: the adjoint program's source says so for the
    recorded trajectory, and its gradient agrees with numpy to 1e-9 and equals bit for
    bit that of the program built with ``MAP_INPUTS`` off (the same arithmetic on the
    same bytes)."""
    from ephys_eqprop import standalone

    monkeypatch.setattr(standalone, "MAP_BYTES", 1024)  # (a new program: part of its key)
    c, x, y = _diode_problem()
    loss = eq.losses.MSE()
    ref = eq.Adjoint().gradient(c.build(batch=2, dt=0.01 * ms), x, y, loss)
    grads, sources = {}, {}
    for mapped in (True, False):
        monkeypatch.setattr(standalone, "MAP_INPUTS", mapped)
        before = set(standalone._PROGRAMS)
        net = c.build(batch=2, dt=0.01 * ms, target="cpp_standalone")
        est = eq.Adjoint()
        grads[mapped] = est.gradient(net, x, y, loss)
        assert est.info.phases["trajectory_bytes"] >= 1024
        new = _new_programs(before, 2)
        sources[mapped] = []
        for program in new:
            with open(os.path.join(program.directory, "objects.cpp")) as f:
                sources[mapped].append(f.read())
        assert rel(ref, grads[mapped]) < TOL
    for k in grads[True]:
        np.testing.assert_array_equal(np.asarray(grads[True][k]), np.asarray(grads[False][k]))
    # every program is handed its TimedArray values: none loads them from static_arrays
    assert not any('open("static_arrays/ta_' in src for src in sources[True])
    assert all('open("static_arrays/ta_' in src for src in sources[False])
    # the adjoint program's trajectory (a 2-D TimedArray of every hidden node) is mapped
    assert any("_map_from_file(name, ta_" in src and "#define EPHYS_EQPROP_MAP_BYTES 1024"
               in src for src in sources[True])
    assert not any("_map_from_file" in src for src in sources[False])


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc (Linux)")
def test_the_cpu_time_of_serving_programs_is_counted(dendrite):
    """The programs kept running are no finished children, so the process's rusage does
    not see their CPU time; serving_cpu_seconds() does: it grows with the runs, by no
    more than their wall time (one thread each, one program at a time) and a clock
    tick of /proc's resolution per program."""
    from ephys_eqprop import standalone

    c, x, y = dendrite
    net = c.build(batch=2, dt=0.05 * ms, target="cpp_standalone")
    eq.Adjoint().gradient(net, x, y, eq.losses.MSE())  # (compiled, serving)
    tick = 1.0 / os.sysconf("SC_CLK_TCK")
    cpu0, t0 = standalone.serving_cpu_seconds(), time.perf_counter()
    while standalone.serving_cpu_seconds() - cpu0 < 5 * tick and time.perf_counter() - t0 < 60:
        eq.Adjoint().gradient(net, x, y, eq.losses.MSE())
    wall = time.perf_counter() - t0
    used = standalone.serving_cpu_seconds() - cpu0
    print(f"serving programs: {used:.2f} s CPU in {wall:.2f} s")
    assert 5 * tick <= used <= wall + 2 * tick * standalone.MAX_SERVERS


@pytest.mark.skipif(os.name == "nt", reason="recordings are written in place on POSIX only")
def test_recordings_written_in_place_equal_those_brian2_writes(monkeypatch):
    """With :data:`standalone.RECORD_IN_PLACE` the monitors' code objects (the
    package's recorders and a user's) write their rows straight into the result files
    (the sources say so), and the user's recording and the gradient are bit for bit
    those of the program that records as Brian2 does (the same arithmetic; only where
    the rows are kept differs) and agree with numpy."""
    from brian2 import StateMonitor

    from ephys_eqprop import standalone

    c, x, y = _diode_problem()
    loss = eq.losses.MSE()
    ref_net = c.build(batch=2, dt=0.01 * ms)
    ref_mon = StateMonitor(ref_net.groups["h"], "v", record=True)
    ref_net.network.add(ref_mon)
    ref = eq.Adjoint().gradient(ref_net, x, y, loss)
    grads, traj, recorded = {}, {}, {}
    for in_place in (True, False):
        monkeypatch.setattr(standalone, "RECORD_IN_PLACE", in_place)
        before = set(standalone._PROGRAMS)
        net = c.build(batch=2, dt=0.01 * ms, target="cpp_standalone")
        mon = StateMonitor(net.groups["h"], "v", record=True)
        net.network.add(mon)
        grads[in_place] = eq.Adjoint().gradient(net, x, y, loss)
        traj[in_place] = np.asarray(mon.v_)
        new = _new_programs(before)
        recorded[in_place] = set().union(*(p.device.recorded for p in new))
        for program in new:
            with open(os.path.join(program.directory, "objects.cpp")) as f:
                src = f.read()
            assert src.count("_record_close(") == len(program.device.recorded)
        assert rel(ref, grads[in_place]) < TOL
        assert traj[in_place].shape == (4, 100)
        assert np.max(abs(traj[in_place] - ref_mon.v_)) <= TOL * np.max(abs(ref_mon.v_))
    assert recorded[True] and not recorded[False]
    for k in grads[True]:
        np.testing.assert_array_equal(np.asarray(grads[True][k]), np.asarray(grads[False][k]))
    np.testing.assert_array_equal(traj[True], traj[False])


@pytest.mark.skipif(os.name == "nt", reason="recordings are written in place on POSIX only")
def test_the_record_file_grows_restarts_and_ends_as_its_rows(tmp_path):
    """The header's record file, compiled on its own: rows past the expected count
    double the file, row 0 starts the file again (a run that did not end leaves its file
    open; a file an earlier run left is written over), a run's end cuts the file to the
    rows recorded, a recording of no element
    and one that never recorded leave empty files — the bytes Brian2 would write."""
    from ephys_eqprop import standalone

    if not shutil.which("g++"):
        pytest.skip("needs g++")
    (tmp_path / standalone._RECORD_FILE).write_text(standalone.RECORD_HEADER)
    (tmp_path / "main.cpp").write_text(textwrap.dedent("""\
        #include "ephys_eqprop_record.h"
        int main(int argc, char** argv) {
            const std::string dir = std::string(argv[1]) + "/";
            _RecordFile a = {"a", 3, 0, 0, 0, nullptr, -1};
            _RecordFile none = {"none", 4, 0, 0, 0, nullptr, -1};
            _RecordFile never = {"never", 4, 0, 0, 0, nullptr, -1};
            for (int row = 0; row < 5; row++)  // a run that does not end
                reinterpret_cast<double*>(_record_row(a, row, 2 * sizeof(double), dir))[0] = -1;
            for (int row = 0; row < 10; row++) {
                double* r = reinterpret_cast<double*>(_record_row(a, row, 2 * sizeof(double), dir));
                r[0] = row; r[1] = 0.5 * row;
                _record_row(none, row, 0, dir);
            }
            _record_close(a, dir);
            _record_close(none, dir);
            _record_close(never, dir);
            return a.fd == -1 && a.data == nullptr ? 0 : 2;
        }
        """))
    exe = tmp_path / "rec"
    subprocess.run(["g++", "-O2", "-o", str(exe), str(tmp_path / "main.cpp")], check=True,
                   cwd=tmp_path, timeout=300)
    # a file an earlier run left, longer than this run's (written over, not emptied)
    np.full((40, 2), 7.0).tofile(tmp_path / "a")
    subprocess.run([str(exe), str(tmp_path)], check=True, timeout=60)
    rows = np.arange(10.0)
    np.testing.assert_array_equal(np.fromfile(tmp_path / "a").reshape(10, 2),
                                  np.stack([rows, 0.5 * rows], axis=1))
    assert (tmp_path / "none").stat().st_size == 0
    assert (tmp_path / "never").stat().st_size == 0


def _readout_problem():
    """Twelve hidden diode neurons onto two outputs (batch 2: 24 synapses end on four
    output nodes): the readout layer whose sums :func:`standalone.lane_sums` splits, and
    undirected branches whose two ends :func:`standalone.fused_sums` sums in one loop."""
    rng = np.random.default_rng(3)
    return _diode_problem(rng.uniform(5, 30, (2, 12)), rng.uniform(1, 5, (12, 2)))


def test_circuits_that_differ_only_in_their_connections_get_programs_of_their_own():
    """Two circuits of the same sizes, equations and number of synapses, one wired
    x_k -> y_k and one x_k -> y_(k+1 mod 3), in one process: each gradient equals the
    numpy target's of its own circuit to 1e-9 (a program keyed without the indices
    would run the second with the first's wiring: the gradients differ by 40 %)."""
    from brian2 import nF, uS, volt

    def build(j, target):
        c = eq.Circuit()
        c.add_input("x", 3)
        c.add_nodes("y", 3, eq.models.CapacitorNode(C=1 * nF, g_leak=1 * uS))
        c.connect("x", "y", eq.models.Resistor(), values=np.array([1.0, 2.0, 3.0]) * uS,
                  i=np.arange(3), j=np.asarray(j))
        c.set_output("y")
        return c.build(batch=1, dt=0.01 * ms, target=target)

    x = eq.TimeSeries(np.ones((1, 200, 3)) * np.array([0.1, 0.3, 0.7]) * volt, dt=0.01 * ms)
    y = eq.TimeSeries(np.ones((1, 200, 3)) * np.array([0.05, 0.0, -0.1]) * volt,
                      dt=0.01 * ms)
    loss = eq.losses.MSE(g_nudge=1 * uS)
    refs = []
    for j in ([0, 1, 2], [1, 2, 0]):
        ref = eq.Adjoint().gradient(build(j, "numpy"), x, y, loss)
        got = eq.Adjoint().gradient(build(j, "cpp_standalone"), x, y, loss)
        err = rel(ref, got)
        print(f"j = {j}: numpy vs cpp_standalone {err:.1e}")
        assert err < TOL, err
        refs.append(ref)
    assert rel(refs[0], refs[1]) > 0.1  # (the two circuits' gradients do differ)


def test_readout_sums_in_lanes_and_fused_branch_ends_agree_with_numpy(monkeypatch):
    """With :data:`standalone.LANE_SUMS` and :data:`standalone.FUSE_SUMS` (the
    defaults) the summed variables of the readout layer add into partial sums, and the
    two ends of each connection's branches are summed in one loop, one code object
    fewer scheduled per connection (the sources say so); the gradients agree with numpy
    and with the program built without either to 1e-9 (only the order of the
    additions differs), and either setting builds programs of its own."""
    from ephys_eqprop import standalone

    c, x, y = _readout_problem()
    loss = eq.losses.MSE()
    ref = eq.Adjoint().gradient(c.build(batch=2, dt=0.01 * ms), x, y, loss)
    grads, found = {}, {}
    for on in (True, False):
        monkeypatch.setattr(standalone, "LANE_SUMS", on)
        monkeypatch.setattr(standalone, "FUSE_SUMS", on)
        before = set(standalone._PROGRAMS)
        net = c.build(batch=2, dt=0.01 * ms, target="cpp_standalone")
        grads[on] = eq.Adjoint().gradient(net, x, y, loss)
        new = _new_programs(before, 2)
        lanes = fused = scheduled = 0
        for program in new:
            with open(os.path.join(program.directory, "main.cpp")) as f:
                runs = [m[2] for m in standalone._device()._ADD.findall(f.read())]
            scheduled += len(runs)
            folder = os.path.join(program.directory, "code_objects")
            for name in runs:  # (the folder may hold other programs' code objects too)
                if "summed_variable" in name:
                    with open(os.path.join(folder, name + ".cpp")) as f:
                        src = f.read()
                    lanes += "_lane_sums0[_idx & 7]" in src
                    fused += src.count("// vector code") == 2
        found[on] = (lanes, fused, scheduled)
        err = rel(ref, grads[on])
        print(f"LANE_SUMS=FUSE_SUMS={on}: {found[on]}, numpy vs cpp_standalone {err:.1e}")
        assert err < TOL, err
    # both programs sum into the outputs (h->y in_post in each, the readouts' sums in the
    # forward program) in lanes; h->y is fused in each program
    assert found[True][0] >= 2 and found[True][1] == 2 and found[False][:2] == (0, 0)
    assert found[True][2] == found[False][2] - 2
    assert rel(grads[False], grads[True]) < TOL



def test_trajectory_reads_by_row_agree_with_numpy(monkeypatch):
    """With :data:`standalone.ROW_READS` (the default) the adjoint program reads the
    forward trajectory (a two-dimensional ``TimedArray``) one row per step, at the
    loop's index, instead of Brian2's per-element lookup; the sources say so, the
    gradients agree with numpy and with the program built without it to 1e-9 (the
    values read are the same), and :func:`standalone.row_reads` leaves the unchanged
    sources alone when the index array is not a group's own or the rows are of
    another length."""
    from ephys_eqprop import standalone

    # three neurons: a structure of this test's own, so that its programs are new here
    c, x, y = _diode_problem(np.array([[20.0, 30.0, 5.0], [10.0, 0.0, 15.0]]),
                             np.array([[5.0], [7.0], [3.0]]))
    loss = eq.losses.MSE()
    ref = eq.Adjoint().gradient(c.build(batch=2, dt=0.01 * ms), x, y, loss)
    grads, rows, sources = {}, {}, []
    for on in (True, False):
        monkeypatch.setattr(standalone, "ROW_READS", on)
        before = set(standalone._PROGRAMS)
        net = c.build(batch=2, dt=0.01 * ms, target="cpp_standalone")
        grads[on] = eq.Adjoint().gradient(net, x, y, loss)
        new = _new_programs(before, 2)
        rows[on] = 0
        for program in new:
            with open(os.path.join(program.directory, "main.cpp")) as f:
                runs = [m[2] for m in standalone._device()._ADD.findall(f.read())]
            for name in runs:
                with open(os.path.join(program.directory, "code_objects", name + ".cpp")) as f:
                    src = f.read()
                rows[on] += "_row_ta_" in src
                if not on and "adj_drive" in name:
                    sources.append(src)
        err = rel(ref, grads[on])
        print(f"ROW_READS={on}: {rows[on]} code objects read rows, numpy vs "
              f"cpp_standalone {err:.1e}")
        assert err < TOL, err
    # the adjoint reads the trajectories of both node groups by rows
    assert rows[True] >= 2 and rows[False] == 0
    assert rel(grads[False], grads[True]) < TOL
    assert sources, "the adjoint program drives its nodes from the trajectory"
    for src in sources:
        own = set(re.findall(r"const int32_t i = _ptr(_array_\w+)\[_idx\];", src))
        assert "_row_ta_" in standalone.row_reads(src, own)
        assert standalone.row_reads(src, set()) == src
        other = re.sub(r"(if \(i < 0 \|\| i >= )(\d+)\)", lambda m: f"{m[1]}{int(m[2]) + 1})",
                       src)
        assert standalone.row_reads(other, own) == other


def _large_results(programs, size: int) -> dict:
    """The result files of at least ``size`` bytes in the run directories of
    ``programs``: path -> inode."""
    found = {}
    for program in programs:
        out = os.path.join(program._scratch, "out")
        for entry in os.scandir(out):
            if entry.stat().st_size >= size:
                found[entry.path] = entry.inode()
    return found


@pytest.mark.skipif(os.name == "nt", reason="kept result files are read, not mapped, on Windows")
def test_a_freed_recording_is_written_over_by_the_next_run(monkeypatch):
    """A recording kept as a mapped file goes back to where its program writes it once
    its trajectory is freed (:data:`standalone.REUSE_BYTES`), and the next run writes
    over that file (the same inode) rather than a new one: gradients of two inputs in
    turn, each against numpy to 1e-9 (a row left from the run before would differ by
    far more). With ``REUSE_BYTES = 0`` the freed file is removed."""
    import gc

    from brian2 import mV

    from ephys_eqprop import standalone

    monkeypatch.setattr(standalone, "KEEP_BYTES", 1024)  # (3.2 kB trajectories: large)
    c, x, y = _diode_problem(np.array([[20.0, 30.0, 5.0, 1.0], [10.0, 0.0, 15.0, 2.0]]),
                             np.array([[5.0], [7.0], [3.0], [4.0]]))
    x2 = eq.datasets.multisine(2, tau_omega=1, dt=0.01 * ms, duration=1 * ms, seed=6,
                               peak=300 * mV)
    loss = eq.losses.MSE()
    ref_net = c.build(batch=2, dt=0.01 * ms)
    refs = [eq.Adjoint().gradient(ref_net, inputs, y, loss) for inputs in (x, x2)]
    before = set(standalone._PROGRAMS)
    net = c.build(batch=2, dt=0.01 * ms, target="cpp_standalone")
    est = eq.Adjoint()
    inodes = []
    for k in range(4):
        err = rel(refs[k % 2], est.gradient(net, (x, x2)[k % 2], y, loss))
        assert err < TOL, (k, err)
        gc.collect()
        programs = _new_programs(before)
        found = _large_results(programs, 1024)
        assert len(found) >= 2, found  # both node groups' voltages, put back
        inodes.append(found)
    assert inodes[1:] == inodes[:-1], "each run wrote over the files the run before left"
    monkeypatch.setattr(standalone, "REUSE_BYTES", 0)
    assert rel(refs[0], est.gradient(net, x, y, loss)) < TOL
    gc.collect()
    assert not _large_results(programs, 1024)
    assert not standalone._KEPT


def test_only_arrays_of_one_exact_finite_value_go_to_programs_as_numbers():
    """:func:`standalone._uniform` (an array handed to a program as one number, which
    the program's ``atof`` reads back exactly) holds bit for bit and for finite values
    only: 0.0 and -0.0 differ, NaN and infinities go as files (the program would take
    them for file names), and so do integers past 2**53 (not exact as doubles)."""
    from ephys_eqprop.standalone import _uniform

    assert _uniform(np.full(7, 1.1111111111111112e-05))
    assert _uniform(np.zeros((3, 4))) and _uniform(np.array([-0.0, -0.0]))
    assert _uniform(np.array([2.5])) and _uniform(np.ones(5, dtype=bool))
    assert _uniform(np.full(3, 2**53, dtype=np.int64))
    assert not _uniform(np.array([0.0, -0.0])) and not _uniform(np.array([1.0, 1.0, 2.0]))
    assert not _uniform(np.array([2.0, 1.0, 2.0]))
    assert not _uniform(np.full(3, np.nan)) and not _uniform(np.full(2, -np.inf))
    assert not _uniform(np.full(3, 2**53 + 1, dtype=np.int64))
    assert not _uniform(np.zeros(0))
    for value in (1.1111111111111112e-05, -0.0, 5e-324, 1.7976931348623157e308):
        assert float(repr(np.float64(value).item())) == value  # what atof reads back


def test_the_changed_state_comes_back_in_one_file_as_brian2_writes_it(monkeypatch, tmp_path):
    """With :data:`standalone.PACK_RESULTS` (the default) a program writes the state
    that Python reads back into one file (:func:`standalone.packed_results`): the
    programs' sources say so, and the gradient and the end state are bit for bit
    those of the programs built without it, which write a file per array as Brian2
    does (the same bytes). A file whose sizes do not add up is an error."""
    from ephys_eqprop import standalone

    c, x, y = _diode_problem(np.array([[20.0, 30.0], [10.0, 4.0]]),
                             np.array([[5.0, 1.0], [7.0, 2.0]]))
    loss = eq.losses.MSE()
    ref = eq.Adjoint().gradient(c.build(batch=2, dt=0.01 * ms), x, y, loss)
    grads, states = {}, {}
    for on in (True, False):
        monkeypatch.setattr(standalone, "PACK_RESULTS", on)
        before = set(standalone._PROGRAMS)
        net = c.build(batch=2, dt=0.01 * ms, target="cpp_standalone")
        grads[on] = eq.Adjoint().gradient(net, x, y, loss)
        states[on] = {name: np.array(g.v[:]) for name, g in net.groups.items()}
        new = _new_programs(before, 2)
        for program in new:
            assert program.packs == on
            with open(os.path.join(program.directory, "objects.cpp")) as f:
                assert (standalone.PACK_FILE in f.read()) == on
        assert rel(ref, grads[on]) < TOL
    for name in grads[True]:
        np.testing.assert_array_equal(np.asarray(grads[True][name]),
                                      np.asarray(grads[False][name]))
    for name in states[True]:
        np.testing.assert_array_equal(states[True][name], states[False][name])
    path = tmp_path / "pack"
    parts = [np.arange(3.0), np.arange(5, dtype=np.int32)]
    np.concatenate([np.array([p.nbytes for p in parts], dtype=np.uint64).view(np.uint8)]
                   + [p.view(np.uint8) for p in parts]).tofile(path)
    got = standalone.unpacked(str(path), 2)
    np.testing.assert_array_equal(got[0].view(np.float64), parts[0])
    np.testing.assert_array_equal(got[1].view(np.int32), parts[1])
    with open(path, "ab") as f:
        f.write(b"\0")
    with pytest.raises(RuntimeError, match="61 bytes, not the 60 its sizes say"):
        standalone.unpacked(str(path), 2)
