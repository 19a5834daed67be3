import numpy as np

from detectors.goertzel import SlidingBins, WindowSpec, dirichlet_gain


def test_bins_match_fft_and_sliding_window_is_exact():
    rate, freqs = 8000, np.array([700.0, 1200.0])
    b = SlidingBins(3, freqs, rate, {"w": WindowSpec(slice(0, 2), 4)})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 40 * 12)).astype(np.float32) * 1000
    z = b.transform(x.reshape(3, 12, 40))
    for k in range(12):
        b.step(z[:, k], (x[:, k * 40:(k + 1) * 40] ** 2).sum(1))
    seg = x[:, -160:].astype(np.float64)
    n = np.arange(160)
    for j, f in enumerate(freqs):
        ref = np.abs(seg @ np.exp(-2j * np.pi * f * n / rate))
        np.testing.assert_allclose(np.abs(b.S["w"][:, j]), ref, rtol=1e-3)
    np.testing.assert_allclose(b.E["w"], (seg ** 2).sum(1), rtol=1e-4)


def test_phase_step_measures_offset():
    rate = 16000
    b = SlidingBins(1, np.array([1000.0]), rate, {"w": WindowSpec(slice(0, 1), 4)})
    t = np.arange(80 * 20) / rate
    x = (np.sin(2 * np.pi * 1012.0 * t) * 8000).astype(np.float32).reshape(1, 20, 80)
    z = b.transform(x)
    for k in range(20):
        b.step(z[:, k], (x[:, k] ** 2).sum(1))
    assert abs(b.offset_hz("w", slice(0, 1))[0, 0] - 12.0) < 0.5


def test_dirichlet_gain_accurate_where_used():
    off = np.linspace(-35, 35, 141)  # gains down to ~0.3 for a 160-sample window at 8 kHz
    exact = np.abs(np.sinc(off * 160 / 8000))
    approx = dirichlet_gain(off, 160, 8000)
    assert dirichlet_gain(np.array(0.0), 160, 8000) == 1.0
    assert np.max(np.abs(approx - exact)[exact > 0.3]) < 0.01
