"""A listobs-like summary of canonical datasets (from an MS or a store)."""

from __future__ import annotations

import dask
import numpy as np
import xarray as xr

from radiocal.astro import format_dec, format_ra, to_datetime
from radiocal.store import schema as S

def format_time(seconds: float, with_date: bool = True) -> str:
    t = to_datetime(seconds)
    return t.strftime("%Y/%m/%d/%H:%M:%S.%f")[:-5] if with_date else t.strftime("%H:%M:%S.%f")[:-5]


def summarize(datasets: list[xr.Dataset], with_flags: bool = True) -> dict:
    """Facts about an observation: fields, scans, spectral windows, antennas, flagged fraction."""
    first = datasets[0]
    scans, fields, spws = [], {}, {}
    for ds in datasets:
        a = ds.attrs
        fields.setdefault(a[S.ATTR_FIELD_ID], {"id": a[S.ATTR_FIELD_ID], "name": a[S.ATTR_FIELD_NAME],
                                               "ra": a[S.ATTR_PHASE_CENTER][0],
                                               "dec": a[S.ATTR_PHASE_CENTER][1], "scans": []})
        fields[a[S.ATTR_FIELD_ID]]["scans"].append(a[S.ATTR_SCAN])
        freq = ds[S.FREQUENCY].values
        width = ds[S.CHANNEL_WIDTH].values
        spws.setdefault(a[S.ATTR_SPW_ID], {
            "id": a[S.ATTR_SPW_ID], "name": a.get(S.ATTR_SPW_NAME, ""), "nchan": int(freq.size),
            "first_freq": float(freq[0]), "width": float(width[0]),
            "total_bandwidth": float(np.abs(width).sum()), "frame": a.get(S.ATTR_FREQ_REF, ""),
            "correlations": ds[S.POLARIZATION].values.tolist()})
        times = ds[S.TIME].values
        scans.append({"scan": a[S.ATTR_SCAN], "field": a[S.ATTR_FIELD_NAME], "field_id": a[S.ATTR_FIELD_ID],
                      "spw": a[S.ATTR_SPW_ID], "start": float(times[0]), "end": float(times[-1]),
                      "integrations": int(times.size),
                      "integration_time": float(np.median(ds[S.INTEGRATION_TIME].values)),
                      "intents": list(a.get(S.ATTR_INTENTS, [])), "partition": a.get(S.ATTR_PARTITION)})
    summary = {
        "telescope": first.attrs.get(S.ATTR_TELESCOPE, ""),
        "observer": first.attrs.get(S.ATTR_OBSERVER, ""),
        "project": first.attrs.get(S.ATTR_PROJECT, ""),
        # TIME stamps the middle of an integration
        "start": min(s["start"] - s["integration_time"] / 2 for s in scans),
        "end": max(s["end"] + s["integration_time"] / 2 for s in scans),
        "fields": sorted(fields.values(), key=lambda f: f["id"]),
        "scans": sorted(scans, key=lambda s: (s["start"], s["spw"])),
        "spws": sorted(spws.values(), key=lambda s: s["id"]),
        "antennas": [{"id": i, "name": str(n), "station": str(st), "diameter": float(d),
                      "position": [float(x) for x in pos]}
                     for i, (n, st, d, pos) in enumerate(zip(
                         first[S.ANTENNA_NAME].values, first[S.ANTENNA_STATION].values,
                         first[S.ANTENNA_DIAMETER].values, first[S.ANTENNA_POSITION].values))],
        "n_partitions": len(datasets),
    }
    if with_flags:
        summary.update(_flag_fraction(datasets))
    return summary


def _flag_fraction(datasets) -> dict:
    """Flagged fraction of the visibilities the MS has rows for (absent rows are not counted)."""
    sums = []
    for ds in datasets:
        present = ds[S.ROW_PRESENT]
        flagged = (ds[S.FLAG] & present).sum()
        total = present.sum() * ds.sizes[S.FREQUENCY] * ds.sizes[S.POLARIZATION]
        sums.append((flagged.data, total.data, present.sum().data))
    computed = dask.compute(*sums)
    flagged = sum(int(f) for f, _, _ in computed)
    total = sum(int(t) for _, t, _ in computed)
    rows = sum(int(r) for _, _, r in computed)
    return {"rows": rows, "visibilities": total, "flagged": flagged,
            "flagged_fraction": flagged / total if total else 0.0}


def format_summary(summary: dict, source: str) -> str:
    """Render :func:`summarize`'s result as text, in the spirit of CASA's listobs."""
    lines = [f"{source}",
             f"  Telescope: {summary['telescope'] or '?'}   Observer: {summary['observer'] or '?'}"
             f"   Project: {summary['project'] or '?'}",
             f"  Observed from {format_time(summary['start'])} to {format_time(summary['end'])} UTC"
             f" ({summary['end'] - summary['start']:.1f} s)"]
    if "rows" in summary:
        lines.append(f"  {summary['rows']} rows, {summary['visibilities']} visibilities, "
                     f"{100 * summary['flagged_fraction']:.2f}% flagged")
    lines += ["", "Scans:",
              f"  {'Scan':>4}  {'FldId':>5} {'FieldName':<16} {'SpwId':>5}  {'Start (UTC)':<23} "
              f"{'End':<11} {'nInt':>5} {'Int(s)':>7}  Intents"]
    for s in summary["scans"]:
        lines.append(f"  {s['scan']:>4}  {s['field_id']:>5} {s['field']:<16.16} {s['spw']:>5}  "
                     f"{format_time(s['start']):<23} {format_time(s['end'], False):<11} "
                     f"{s['integrations']:>5} {s['integration_time']:>7.2f}  {','.join(s['intents'])}")
    lines += ["", "Fields:", f"  {'ID':>3}  {'Name':<16} {'RA (J2000)':<14} {'Decl (J2000)':<14} Scans"]
    for f in summary["fields"]:
        lines.append(f"  {f['id']:>3}  {f['name']:<16.16} {format_ra(f['ra'], 4, ':'):<14} {format_dec(f['dec'], 3, '.'):<14} "
                     f"{','.join(map(str, sorted(set(f['scans']))))}")
    lines += ["", "Spectral windows:",
              f"  {'ID':>3}  {'Name':<12} {'#Chans':>6} {'Frame':<6} {'Ch0 (MHz)':>12} {'ChanWid (kHz)':>14} "
              f"{'TotBW (kHz)':>12}  Corrs"]
    for s in summary["spws"]:
        lines.append(f"  {s['id']:>3}  {s['name']:<12.12} {s['nchan']:>6} {s['frame']:<6} "
                     f"{s['first_freq'] / 1e6:>12.4f} {s['width'] / 1e3:>14.3f} "
                     f"{s['total_bandwidth'] / 1e3:>12.1f}  {' '.join(s['correlations'])}")
    lines += ["", f"Antennas: {len(summary['antennas'])}",
              f"  {'ID':>3}  {'Name':<8} {'Station':<10} {'Diam.(m)':>8}  ITRF x, y, z (m)"]
    for a in summary["antennas"]:
        x, y, z = a["position"]
        lines.append(f"  {a['id']:>3}  {a['name']:<8.8} {a['station']:<10.10} {a['diameter']:>8.1f}  "
                     f"{x:.3f}, {y:.3f}, {z:.3f}")
    return "\n".join(lines)
