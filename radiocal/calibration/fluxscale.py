"""Flux-density bootstrapping (CASA's ``fluxscale``).

Amplitude gains solved against a unit model on a secondary calibrator carry its flux density:
``|g_transfer|^2 = S |g_true|^2``, while the flux calibrator's gains (solved against its real
model) are ``|g_true|``. Per antenna and hand, the ratio of time-averaged amplitudes squared
estimates ``S``; the antenna estimates are combined with outlier rejection. Across spectral
windows a power law ``S(nu) = S_0 (nu / nu_0)^alpha`` is fitted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radiocal.errors import ConfigError
from radiocal.store import caltables as C
from radiocal.store import schema as S


@dataclass(frozen=True)
class FluxResult:
    """Bootstrapped flux densities of one field.

    ``flux`` / ``error`` / ``n_antennas`` per spw id; ``frequency`` (Hz) per spw id; ``fit`` is
    ``(S_0, alpha, nu_0)`` when more than one spw was measured, else None. ``skipped``: the spw
    ids where the field and the reference share no unflagged antenna (no flux density; the
    field's solutions there are flagged).
    """

    field: str
    flux: dict
    error: dict
    n_antennas: dict
    frequency: dict
    fit: tuple | None
    skipped: tuple = ()

    def summary(self) -> str:
        lines = []
        for spw in sorted(self.flux):
            lines.append(f"Flux density for {self.field} in SpW={spw} "
                         f"(freq={self.frequency[spw] / 1e9:.6g} GHz) is: "
                         f"{self.flux[spw]:.6g} +/- {self.error[spw]:.3g} Jy "
                         f"(from {self.n_antennas[spw]} antenna-hands)")
        if self.fit is not None:
            s0, alpha, nu0 = self.fit
            lines.append(f"Fitted spectrum for {self.field}: {s0:.6g} Jy at "
                         f"{nu0 / 1e9:.6g} GHz, spectral index {alpha:.4g}")
        return "\n".join(lines)


def _field_id(tds, name) -> int:
    names = [str(n) for n in tds.attrs.get(C.ATTR_FIELD_NAMES, [])]
    ids = [int(i) for i in tds.attrs.get(C.ATTR_FIELD_IDS, [])]
    if name in names:
        return ids[names.index(name)]
    if str(name).isdigit() and int(name) in ids:
        return int(name)
    raise ConfigError(f"fluxscale: field {name!r} has no solutions in the table "
                      f"(fields: {', '.join(names)})")


def _one_id_per_name(tds):
    """The table with each field's solutions under the first id of its name: concatenated
    observations may list one source in several FIELD rows, and its flux density is one."""
    fields = tds[C.SOL_FIELD].values
    canonical = fields.copy()
    for name in dict.fromkeys(str(n) for n in tds.attrs.get(C.ATTR_FIELD_NAMES, [])):
        ids = C.field_ids(tds, name)
        canonical[np.isin(fields, ids)] = ids[0]
    if np.array_equal(canonical, fields):
        return tds
    return tds.assign({C.SOL_FIELD: (tds[C.SOL_FIELD].dims, canonical)})


def _mean_amplitude(tds, field_id):
    """Time-averaged |g| per (antenna, hand) over the field's unflagged solutions."""
    rows = tds[C.SOL_FIELD].values == field_id
    amp = np.abs(tds[C.GAIN].values[rows][:, :, 0, :])          # (time, antenna, hand)
    ok = ~tds[C.SOL_FLAG].values[rows][:, :, 0, :]
    n = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(ok, amp, 0).sum(axis=0) / n, np.nan)


def _amplitude_at(tds, field_id, times):
    """|g| per (time, antenna, hand) of a field at other ``times``: linear in time through
    its two nearest unflagged solutions (extrapolating), or the only one there is."""
    rows = tds[C.SOL_FIELD].values == field_id
    sol_t = tds[C.SOL_TIME].values[rows]
    amp = np.abs(tds[C.GAIN].values[rows][:, :, 0, :])
    ok = ~tds[C.SOL_FLAG].values[rows][:, :, 0, :]
    out = np.full((len(times),) + amp.shape[1:], np.nan)
    for a in range(amp.shape[1]):
        for h in range(amp.shape[2]):
            t, y = sol_t[ok[:, a, h]], amp[ok[:, a, h], a, h]
            for i, x in enumerate(times):
                if t.size == 1:
                    out[i, a, h] = y[0]
                elif t.size > 1:
                    near = np.argsort(np.abs(t - x), kind="stable")[:2]
                    t0, t1 = t[near]
                    y0, y1 = y[near]
                    out[i, a, h] = y0 + (y1 - y0) * (x - t0) / (t1 - t0) if t1 != t0 else y0
    return out


def _ratios(tds, ref_id, fid, method):
    if method == "mean":
        return (_mean_amplitude(tds, fid) / _mean_amplitude(tds, ref_id)) ** 2
    rows = tds[C.SOL_FIELD].values == ref_id
    ref_amp = np.abs(tds[C.GAIN].values[rows][:, :, 0, :])
    ref_ok = ~tds[C.SOL_FLAG].values[rows][:, :, 0, :]
    trans = _amplitude_at(tds, fid, tds[C.SOL_TIME].values[rows])
    ratio = np.where(ref_ok & (ref_amp > 0), (trans / np.where(ref_amp > 0, ref_amp, 1)) ** 2,
                     np.nan)
    # one estimate per antenna and hand: the mean over the reference's solutions
    n = np.isfinite(ratio).sum(axis=0)
    total = np.where(np.isfinite(ratio), ratio, 0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / n, np.nan)


def _robust_mean(values):
    """Mean and its error after rejecting points more than 3 scaled MADs from the median."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.nan, np.nan, 0
    med = np.median(values)
    mad = 1.4826 * np.median(np.abs(values - med))
    keep = values if mad == 0 else values[np.abs(values - med) <= 3 * mad]
    err = keep.std(ddof=1) / np.sqrt(keep.size) if keep.size > 1 else np.nan
    return float(keep.mean()), float(err), int(keep.size)


def _adjacent_scans(tds, ref_id, transfer_ids):
    """Solutions of the reference scans and, per transfer field, its scan nearest in time to
    each reference scan: the drift is then bridged over the shortest gaps only."""
    times = tds[C.SOL_TIME].values
    fields = tds[C.SOL_FIELD].values
    scans = tds[C.SOL_SCAN].values
    # a scan whose solutions are all flagged (its rows flagged at the telescope) bridges nothing
    solved = ~tds[C.SOL_FLAG].values.reshape(times.size, -1).all(axis=1)
    keep = fields == ref_id
    for ref_scan in np.unique(scans[(fields == ref_id) & solved]):
        ref_times = times[(fields == ref_id) & (scans == ref_scan)]
        for fid in transfer_ids:
            mine = (fields == fid) & solved
            if not mine.any():
                continue
            gaps = {sc: np.min(np.abs(times[mine & (scans == sc)][:, None] - ref_times[None]))
                    for sc in np.unique(scans[mine])}
            nearest = min(gaps, key=gaps.get)
            keep |= mine & (scans == nearest)
    return keep


def _fit_drift(tds, ref_id, transfer_ids, degree, local=False):
    """Joint fit of a smooth gain-amplitude drift and the transfer fields' flux densities.

    Per antenna and hand, ``log|g(t)| = poly_a(t)`` (degree ``degree`` in time) for the
    reference field and ``poly_a(t) + log(S_f) / 2`` for transfer field ``f``; every
    antenna-hand shares ``S_f``. Solved by weighted least squares (weights SNR^2) with the
    per-antenna polynomials eliminated (Schur complement), so the cost grows linearly with the
    number of antennas. Returns ``{field_id: (S, error, n_antenna_hands)}``.
    """
    times = tds[C.SOL_TIME].values
    fields = tds[C.SOL_FIELD].values
    use = np.isin(fields, [ref_id] + list(transfer_ids))
    if local:
        use = use & _adjacent_scans(tds, ref_id, transfer_ids)
    span = times[use].max() - times[use].min() if use.any() else 0.0
    x = (times - times[use].mean()) / (0.5 * span) if span > 0 else np.zeros_like(times)
    poly = np.vander(x, degree + 1, increasing=True)                  # (time, degree+1)
    which = np.stack([fields == f for f in transfer_ids], axis=1).astype(float)  # (time, nf)
    amp = np.abs(tds[C.GAIN].values[:, :, 0, :])                      # (time, antenna, hand)
    snr = tds[C.SNR].values[:, :, 0, :].astype(np.float64)
    ok = ~tds[C.SOL_FLAG].values[:, :, 0, :] & (amp > 0) & use[:, None, None]
    nf = len(transfer_ids)
    schur = np.zeros((nf, nf))
    rhs = np.zeros(nf)
    blocks, count = [], np.zeros(nf, dtype=int)
    for a in range(amp.shape[1]):
        for h in range(amp.shape[2]):
            sel = ok[:, a, h]
            has_ref = (sel & (fields == ref_id)).sum()
            if has_ref == 0 or (sel & (fields != ref_id)).sum() == 0:
                continue
            w = np.minimum(snr[sel, a, h], 1e4) ** 2
            y = np.log(amp[sel, a, h])
            A, B = poly[sel], 0.5 * which[sel]
            # a polynomial the reference alone cannot pin down would absorb S: limit its degree
            ncoef = min(degree + 1, int(len(np.unique(times[sel]))) - 1)
            A = A[:, :max(ncoef, 1)]
            naa = (A * w[:, None]).T @ A
            nas = (A * w[:, None]).T @ B
            try:
                inv = np.linalg.inv(naa)
            except np.linalg.LinAlgError:
                continue
            schur += (B * w[:, None]).T @ B - nas.T @ inv @ nas
            rhs += (B * w[:, None]).T @ y - nas.T @ inv @ ((A * w[:, None]).T @ y)
            blocks.append((A, B, w, y, inv, nas))
            count += (B.sum(axis=0) > 0)
    results = {}
    if not blocks or np.any(count == 0):
        return results
    logs = np.linalg.solve(schur, rhs)
    chi2, nobs, npar = 0.0, 0, nf
    for A, B, w, y, inv, nas in blocks:
        coef = inv @ ((A * w[:, None]).T @ (y - B @ logs))
        resid = y - A @ coef - B @ logs
        chi2 += float((w * resid ** 2).sum())
        nobs += y.size
        npar += A.shape[1]
    red = chi2 / (nobs - npar) if nobs > npar else 1.0
    cov = np.linalg.inv(schur) * red
    for k, fid in enumerate(transfer_ids):
        flux = float(np.exp(logs[k]))
        results[fid] = (flux, float(flux * np.sqrt(max(cov[k, k], 0.0))), int(count[k]))
    return results


def fluxscale(table, reference, transfer, method="interpolate", degree=2, local=False):
    """Scale the transfer fields' amplitude gains to the reference field's flux scale.

    Parameters
    ----------
    table : list of xarray.Dataset
        A G table (calmode ``ap``) with solutions for the reference (flux calibrator, solved
        against its model) and transfer fields (solved against a unit point source).
    reference : str
        Flux calibrator field name.
    transfer : sequence of str
        Fields whose flux densities to bootstrap.
    method : {"interpolate", "fit", "mean"}
        ``"mean"`` (CASA): ratio of each antenna's amplitudes averaged over all solutions of
        each field. ``"interpolate"``: the transfer field's amplitudes are interpolated
        (linearly, through its nearest two solutions) to the reference field's solution times,
        so slow gain drifts between the scans bias the flux density less. ``"fit"``: a joint
        fit of a smooth drift per antenna (polynomial of ``degree`` in time) and one flux
        density per transfer field; best with short-interval amplitude solutions.

    Returns
    -------
    scaled : list of xarray.Dataset
        The table with each transfer field's gains divided by ``sqrt(S)``; in a spw where the
        field and the reference share no unflagged antenna, the field's solutions flagged
        (like CASA's applycal without a solution, the data they would calibrate get flagged,
        not left on another flux scale) and the spw listed in its result's ``skipped``.
    results : dict
        Field name -> :class:`FluxResult`.

    Raises
    ------
    ConfigError
        When a transfer field shares no unflagged antenna with the reference in any spw.
    """
    if method not in ("interpolate", "fit", "mean"):
        raise ConfigError(f"fluxscale method {method!r} is not 'interpolate', 'fit' or 'mean'")
    if C.table_type(table) not in ("G", "T"):
        raise ConfigError("fluxscale needs a G or T amplitude table")
    scaled = []
    per_field: dict = {name: ({}, {}, {}, {}) for name in transfer}
    skipped: dict = {name: [] for name in transfer}
    for original in table:
        tds = _one_id_per_name(original)
        spw = int(tds.attrs[S.ATTR_SPW_ID])
        ref_id = _field_id(tds, reference)
        gains = tds[C.GAIN].values.copy()
        flags = tds[C.SOL_FLAG].values.copy()
        fitted = (_fit_drift(tds, ref_id, [_field_id(tds, n) for n in transfer], degree,
                             local) if method == "fit" and transfer else {})
        for name in transfer:
            fid = _field_id(tds, name)
            if method == "fit":
                flux, err, n = fitted.get(fid, (np.nan, np.nan, 0))
            else:
                with np.errstate(invalid="ignore", divide="ignore"):
                    ratio = _ratios(tds, ref_id, fid, method)
                flux, err, n = _robust_mean(ratio.ravel())
            rows = tds[C.SOL_FIELD].values == fid
            if not np.isfinite(flux) or flux <= 0:
                skipped[name].append(spw)
                flags[rows] = True
                continue
            gains[rows] = gains[rows] / np.sqrt(flux)
            fluxes, errors, counts, freqs = per_field[name]
            fluxes[spw], errors[spw], counts[spw] = flux, err, n
            freqs[spw] = float(np.mean(tds[C.SOL_FREQ].values))
        scaled.append(original.assign({C.GAIN: (tds[C.GAIN].dims, gains.astype(np.complex64)),
                                       C.SOL_FLAG: (tds[C.SOL_FLAG].dims, flags)}))
    results = {}
    for name, (fluxes, errors, counts, freqs) in per_field.items():
        if not fluxes:
            raise ConfigError(f"fluxscale: no common unflagged antennas for {name!r} and "
                              f"{reference!r} in any spw")
        results[name] = FluxResult(name, fluxes, errors, counts, freqs,
                                   fit_spectrum(freqs, fluxes, errors), tuple(skipped[name]))
    return scaled, results


def fit_spectrum(freqs: dict, fluxes: dict, errors: dict):
    """Weighted power-law fit ``(S_0, alpha, nu_0)`` over spectral windows (None if < 2)."""
    spws = [s for s in sorted(fluxes) if np.isfinite(fluxes[s]) and fluxes[s] > 0]
    if len(spws) < 2:
        return None
    nu = np.array([freqs[s] for s in spws])
    flux = np.array([fluxes[s] for s in spws])
    err = np.array([errors[s] if np.isfinite(errors[s]) and errors[s] > 0 else np.nan
                    for s in spws])
    weight = 1.0 / (err / flux) ** 2 if np.isfinite(err).all() else np.ones(len(spws))
    nu0 = float(np.exp(np.average(np.log(nu), weights=weight)))
    x = np.log10(nu / nu0)
    y = np.log10(flux)
    alpha, logs0 = np.polyfit(x, y, 1, w=np.sqrt(weight))
    return float(10 ** logs0), float(alpha), nu0
