"""Optimizers, bounds and the Trainer (progress, history, checkpoints, resume)."""

import numpy as np
import pytest
from brian2 import siemens, uS, volt

import ephys_eqprop as eq
from ephys_eqprop.learning import accuracy


def _params(vals):
    return {"a": np.asarray(vals, float) * uS}


def _grads(vals):
    return {"a": np.asarray(vals, float) * volt**2}


def test_sgd_step_is_lr_times_gradient():
    # exact arithmetic: θ - lr·g with lr in S/V² (plain number taken in SI)
    opt = eq.SGD(lr=1e-7 * siemens / volt**2)
    new = opt.step(_params([5.0, 5.0]), _grads([10.0, -10.0]))
    np.testing.assert_allclose(np.asarray(new["a"]), [4e-6, 6e-6], rtol=1e-12)


def test_sgd_checks_lr_units():
    opt = eq.SGD(lr=1e-7 * siemens)  # wrong: needs S/V²
    with pytest.raises(TypeError, match="lr"):
        opt.step(_params([1.0]), _grads([1.0]))


def test_bounds_keep_conductances_non_negative_and_below_max():
    opt = eq.SGD(lr=1.0 * siemens / volt**2, bounds=eq.Bounds(g_min=0 * siemens, g_max=8 * uS))
    new = opt.step(_params([1.0, 5.0]), _grads([1e-5, -1e-5]))
    np.testing.assert_allclose(np.asarray(new["a"]), [0.0, 8e-6], rtol=1e-12)


def test_bounds_reject_bad_values():
    with pytest.raises(ValueError, match="g_max > g_min"):
        eq.Bounds(g_min=2 * uS, g_max=1 * uS)
    with pytest.raises(ValueError, match="non-negative"):
        eq.Bounds(g_min=-1 * uS)


def test_momentum_accumulates_velocity():
    # two steps with a constant gradient g: total displacement lr·g·(1 + (1 + μ))
    opt = eq.Momentum(lr=1e-7 * siemens / volt**2, momentum=0.5)
    p = _params([10.0])
    for _ in range(2):
        p = opt.step(p, _grads([1.0]))
    np.testing.assert_allclose(float(p["a"][0]), 10e-6 - 1e-7 * (1 + 1.5), rtol=1e-12)


def test_adam_first_step_has_size_lr_whatever_the_gradient_scale():
    # Adam's bias-corrected first step is lr·sign(g) (up to eps): scale-free
    for scale in (1e-9, 1.0, 1e6):
        opt = eq.Adam(lr=0.1 * uS)
        new = opt.step(_params([5.0, 5.0]), _grads([scale, -scale]))
        np.testing.assert_allclose(np.asarray(new["a"]), [4.9e-6, 5.1e-6], rtol=1e-6)


def test_optimizer_rejects_bad_arguments():
    rate = siemens / volt**2
    with pytest.raises(ValueError, match="lr must be a positive"):
        eq.SGD(lr=0 * rate)
    with pytest.raises(ValueError, match="momentum"):
        eq.Momentum(lr=1.0 * rate, momentum=1.5)
    with pytest.raises(KeyError, match="No gradient"):
        eq.SGD(lr=1.0 * rate).step(_params([1.0]), {})


@pytest.mark.parametrize("cls", [eq.SGD, eq.Momentum, eq.Adam])
def test_a_rate_without_units_is_refused(cls):
    """Adam(lr=0.01) would be read as 0.01 S per step: a thousandfold jump on µS weights."""
    with pytest.raises(TypeError, match=r"must carry units \(e\.g\. "):
        cls(lr=0.01)
    with pytest.raises(TypeError, match=r"lr\['h~y'\]=\.\.\.\) must carry units"):
        cls(lr={"*": 0.1 * uS, "h~y": 1.0})


def test_accuracy_metric():
    z = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    y = np.eye(2)[[0, 1, 1]]
    assert accuracy(z, y) == pytest.approx(2 / 3)
    assert accuracy(np.array([[0.2], [-0.1]]), np.array([[0.1], [0.1]])) == 0.5


def _xor_trainer(tmp_path=None, seed=0):
    data = eq.datasets.xor()
    circuit = eq.layered(2, [4], 2, bias=1 * volt, g_init=20 * uS, rng=seed)
    net = circuit.build(batch=4)
    loss = eq.losses.CrossEntropy(g_nudge=20 * uS, v_scale=0.05 * volt)
    est = eq.SymmetricEP(beta=0.1, settle=eq.Settle(tol=1e-7 * volt))
    ckpt = None if tmp_path is None else tmp_path / "ckpt.npz"
    tr = eq.Trainer(net, est, loss, eq.Adam(lr=1 * uS), checkpoint=ckpt, seed=seed,
                    progress=False)
    return data, tr


def test_trainer_lowers_the_loss_and_records_history(tmp_path):
    data, tr = _xor_trainer(tmp_path)
    before = tr.evaluate(data.X_train, data.y_train)["loss"]
    hist = tr.fit(data.X_train, data.y_train, epochs=8, batch_size=2,
                  validation=(data.X_test, data.y_test))
    after = tr.evaluate(data.X_train, data.y_train)["loss"]
    assert hist.epoch == list(range(1, 9))
    assert len(hist.train_loss) == len(hist.val_accuracy) == 8
    assert after < 0.9 * before
    assert (tmp_path / "ckpt.npz").exists()


def test_checkpoint_resume_reproduces_an_uninterrupted_run(tmp_path):
    """Stop after 2 epochs, resume into a fresh trainer: same conductances as 4 straight epochs."""
    data, straight = _xor_trainer(None)
    straight.fit(data.X_train, data.y_train, epochs=4, batch_size=2)
    ref = straight.net.get_params()

    data, first = _xor_trainer(tmp_path)
    first.fit(data.X_train, data.y_train, epochs=2, batch_size=2)
    _, second = _xor_trainer(tmp_path)  # new process in spirit: fresh net and optimizer
    second.fit(data.X_train, data.y_train, epochs=4, batch_size=2, resume=True)
    got = second.net.get_params()
    assert second.history.epoch == [1, 2, 3, 4]
    for k in ref:
        # identical arithmetic in both runs: agreement to rounding
        np.testing.assert_allclose(np.asarray(got[k]), np.asarray(ref[k]), rtol=1e-9, atol=0)


def test_interrupt_saves_a_checkpoint_mid_epoch(tmp_path, monkeypatch):
    data, tr = _xor_trainer(tmp_path)
    calls = {"n": 0}
    original = tr.optimizer.step

    def flaky(params, grads, specs=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(params, grads, specs)

    monkeypatch.setattr(tr.optimizer, "step", flaky)
    with pytest.raises(KeyboardInterrupt):
        tr.fit(data.X_train, data.y_train, epochs=3, batch_size=2)
    _, again = _xor_trainer(tmp_path)
    again.load()
    assert again.epoch == 0 and again._pos == 2  # one mini-batch of two done
    assert again.optimizer.t == 1


def test_trainer_rejects_bad_batch_size():
    data, tr = _xor_trainer(None)
    with pytest.raises(ValueError, match="batch_size"):
        tr.fit(data.X_train, data.y_train, epochs=1, batch_size=5)


# ------------------------------------------------------------------ rates and bounds per parameter
def _mixed_circuit(G0):
    """x(2) -> h(2) resistors; h -> y: a signed directed synapse and inductors."""
    from brian2 import kohm, nF
    from brian2.units.allunits import henry

    c = eq.Circuit()
    c.add_input("x", 2)
    c.add_nodes("h", 2, eq.models.CapacitorNode(C=1 * nF, g_leak=1 * uS))
    c.add_nodes("y", 1, eq.models.CapacitorNode(C=1 * nF, g_leak=1 * uS))
    c.connect("x", "h", eq.models.Resistor(), g=np.array([[2.0, 1.0], [1.0, 2.0]]) * uS)
    c.connect("h", "y", eq.models.DirectedSynapse(V_s=0.2 * volt), g=np.full((2, 1), G0) * uS)
    c.connect("h", "y", eq.models.Inductor(R=10 * kohm), name="h~y",
              values=np.full((2, 1), 500.0) * henry)
    c.set_output("y")
    return c


def test_each_kind_of_parameter_learns_with_its_own_rate_and_bound():
    """Resistors, a signed directed synapse and inductors in one circuit: Adam's first
    step is exactly its rate in each parameter's units (lr·sign g, Adam's bias-corrected
    first step), conductances stay >= 0, inductances inside their bounds, and the
    directed synapse's G crosses zero because the teacher's is negative."""
    from brian2 import ms
    from brian2.units.allunits import henry

    dt = 0.01 * ms
    t = np.arange(400) * 0.01e-3
    x = eq.TimeSeries((0.2 * np.stack([np.sin(2 * np.pi * 400 * t), np.cos(2 * np.pi * 300 * t)],
                                      axis=-1))[None] * volt, dt=dt)
    teacher = _mixed_circuit(-1.0).build(batch=1, dt=dt)
    from ephys_eqprop.dynamics import prepare, simulate

    y_out = simulate(teacher, prepare(teacher, x)).v_out
    y = eq.TimeSeries(np.transpose(y_out, (1, 0, 2)) * volt, dt=dt)
    net = _mixed_circuit(0.3).build(batch=1, dt=dt)
    lr = {"x->h": 0.05 * uS, "h->y": 0.4 * uS, henry: 20 * henry}
    bounds = {"h~y": eq.Bounds(low=200 * henry, high=900 * henry),
              "x->h": eq.Bounds(high=3 * uS)}
    opt = eq.Adam(lr=lr, bounds=bounds)
    loss = eq.losses.MSE(g_nudge=1 * uS)
    before = net.get_params()
    grads = eq.Adjoint().gradient(net, x, y, loss)
    net.set_params(opt.step(before, grads, net.params))
    after = net.get_params()
    for name, rate in (("x->h", 0.05e-6), ("h->y", 0.4e-6), ("h~y", 20.0)):
        step = np.abs(np.asarray(after[name]) - np.asarray(before[name]))
        np.testing.assert_allclose(step[np.asarray(grads[name]) != 0], rate, rtol=1e-6)
    assert float(np.asarray(grads["h->y"]).sum()) > 0  # descent lowers G
    tr = eq.Trainer(net, eq.Adjoint(), loss, opt, progress=False)
    tr.fit(x, y, epochs=8)
    final = net.get_params()
    assert np.all(np.asarray(final["h->y"]) < 0), "G must cross zero: the teacher's is -1 µS"
    assert np.all(np.asarray(final["x->h"]) >= 0) and np.all(np.asarray(final["x->h"]) <= 3e-6)
    L = np.asarray(final["h~y"])
    assert np.all((L >= 200) & (L <= 900))


def test_rates_and_bounds_that_do_not_fit_the_parameters_are_refused():
    from brian2.units.allunits import henry

    net = _mixed_circuit(0.3).build(batch=1)
    params = net.get_params()
    grads = {k: np.ones(np.shape(v)) * volt**2 for k, v in params.items()}  # Adam: any unit
    with pytest.raises(TypeError, match=r"for parameter 'h~y' must have dimensions"):
        eq.Adam(lr=0.1 * uS).step(params, grads, net.params)
    with pytest.raises(ValueError, match=r"'h~y' must stay positive.*Bounds\(low=\.\.\.\)"):
        eq.Adam(lr={siemens: 0.1 * uS, henry: 1 * henry}).step(params, grads, net.params)
    with pytest.raises(ValueError, match=r"below 0, but the parameter cannot be negative"):
        eq.Adam(lr={siemens: 0.1 * uS, henry: 1 * henry},
                bounds={"x->*": eq.Bounds(low=-1 * uS), "h~y": eq.Bounds(low=1 * henry)}
                ).step(params, grads, net.params)
    with pytest.raises(TypeError, match=r"does not have the units of parameter 'h~y'"):
        eq.Adam(lr={siemens: 0.1 * uS, henry: 1 * henry},
                bounds=eq.Bounds(high=5 * uS)).step(params, grads, net.params)


def test_rate_decay_shrinks_each_step_geometrically():
    """Adam's bias-corrected steps are lr·sign(g) for a constant gradient: with decay d the
    k-th step is lr·d^(k-1) exactly (up to Adam's eps)."""
    opt = eq.Adam(lr=0.1 * uS, decay=0.5)
    p = _params([5.0])
    steps = []
    for _ in range(3):
        new = opt.step(p, _grads([1.0]))
        steps.append(float(np.asarray(p["a"])[0] - np.asarray(new["a"])[0]))
        p = new
    np.testing.assert_allclose(steps, [1e-7, 5e-8, 2.5e-8], rtol=1e-6)
    with pytest.raises(ValueError, match="decay must lie in"):
        eq.Adam(lr=0.1 * uS, decay=1.5)
