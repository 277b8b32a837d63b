"""The benchmark's tables: Markdown from the suites' rows (ratios against maml at the same steps)."""

from __future__ import annotations

from .catalogue import CONFIGS


def peers_table(rows: list[dict]) -> str:
    from .peers import ROWS

    exact = {"euler": "maml (euler)", "rk4": "maml (rk4)", "imaml": "dense solve"}
    lines = [
        "| steps | row | time (s) | peak memory (MB) | relative error | exact reference | error vs the flow |",
        "|---:|---|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        if "time_s" in r:
            flow = f"{r['flow_error']:.1e}" if "flow_error" in r else ""
            lines.append(
                f"| {r['steps']} | {r['name']} | {r['time_s']:.3f} | {r['peak_mb']:.1f} | "
                f"{r['rel_error']:.1e} | {exact[ROWS[r['name']][1]]} | {flow} |"
            )
        else:
            lines.append(f"| {r['steps']} | {r['name']} | | | | {r['error']} | |")
    curvature = {r["steps"]: r["lambda_max"] for r in rows if "lambda_max" in r}
    if curvature:
        lines.append("")
        lines.append(
            "λmax of the support Hessian at θ and at u(T): "
            + "; ".join(f"{steps} steps: {lam0:.1f} and {lam_T:.1f}" for steps, (lam0, lam_T) in curvature.items())
        )
    return "\n".join(lines)


# a whole meta-step of the Adjoint MAML paper's setting: (method, inner steps)


def meta_step_table(rows: list[dict]) -> str:
    lines = [
        "| meta-step | losses | s / meta-step (median) | stacked / vmapped | compiled / eager | compile (s) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    before = {r["name"]: r for r in rows if r["losses"] == "vmapped" and "time_s" in r}
    eager = {r["name"]: r for r in rows if r["losses"] == "stacked" and not r.get("compile") and "time_s" in r}
    for r in rows:
        losses = r["losses"] + (", compiled" if r.get("compile") else "")
        if "time_s" not in r:
            lines.append(f"| {r['name']} | {losses} | {r.get('error')} | | | |")
            continue
        ref, base = before.get(r["name"]), eager.get(r["name"])
        stacked = f"{r['time_s'] / ref['time_s']:.2f}" if ref and r is base else ""
        compiled = f"{r['time_s'] / base['time_s']:.2f}" if base and r.get("compile") else ""
        spent = f"{r['compile_s']:.1f}" if r.get("compile") else ""
        lines.append(f"| {r['name']} | {losses} | {r['time_s']:.3f} | {stacked} | {compiled} | {spent} |")
    return "\n".join(lines)


def side_by_side_table(rows: list[dict]) -> str:
    peers = list(dict.fromkeys(p for r in rows for p in r.get("vs", {})))
    lines = [
        "| steps | row | s (median) | first call (s) | / kit adjoint | "
        + "".join(f"/ {p} | " for p in peers)
        + "relative error vs kit maml |",
        "|---:|---|---:|---:|---:|" + "---:|" * len(peers) + "---:|",
    ]
    for r in rows:
        if "time_s" in r:
            vs = "".join(f" {r['vs'][p]:.2f} |" if p in r.get("vs", {}) else " |" for p in peers)
            lines.append(
                f"| {r['steps']} | {r['name']} | {r['time_s']:.3f} | {r['first_s']:.1f} | {r['ratio']:.2f} |"
                f"{vs} {r['rel_error']:.1e} |"
            )
        else:
            lines.append(f"| {r['steps']} | {r['name']} | {r['error']} | | |" + " |" * len(peers) + " |")
    return "\n".join(lines)


def widget_table(rows: list[dict]) -> str:
    head = "| app | build (s) | control | moves | redraw median (s) | redraw worst (s) |"
    lines = [head, "|---|---:|---|---:|---:|---:|"]
    for r in rows:
        build = f"{r['build_s']:.1f}" + (f" (measured in {r['ready_s']:.1f})" if r.get("ready_s") else "")
        lines.append(
            f"| {r['app']} | {build} | {r['control']} | {r['moves']} | {r['median_s']:.3f} | {r['worst_s']:.3f} |"
        )
    return "\n".join(lines)


def steps_table(rows: list[dict]) -> str:
    head = "| steps | method | time (s) | peak memory (MB) | time / maml | memory / maml |"
    lines = [head, "|---:|---|---:|---:|---:|---:|"]
    maml = {r["steps"]: r for r in rows if r["name"] == "maml" and "time_s" in r}
    heads = {r["steps"]: r for r in rows if r["name"] == "head-maml" and "time_s" in r}
    convs = {r["steps"]: r for r in rows if r["name"] == "conv4-maml" and "time_s" in r}
    for r in rows:
        if "time_s" not in r:
            lines.append(f"| {r['steps']} | {r['name']} | {r.get('error', 'skipped')} | | | |")
            continue
        spec = CONFIGS[r["name"]]
        ref = (heads if spec.get("episode") else convs if spec.get("images") else maml).get(r["steps"])
        tr = f"{r['time_s'] / ref['time_s']:.2f}" if ref else "-"
        mr = f"{r['peak_mb'] / ref['peak_mb']:.2g}" if ref and ref["peak_mb"] > 0 else "-"
        lines.append(f"| {r['steps']} | {r['name']} | {r['time_s']:.3f} | {r['peak_mb']:.1f} | {tr} | {mr} |")
    return "\n".join(lines)
