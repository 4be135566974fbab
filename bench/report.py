"""The side-by-side table of bench/peers.sh and bench/echo-peers.sh: chatbox against one peer,
from the `chatbox bench --json` reports in WORK ({name}-idle.json, {name}-max.json,
{name}-steady.json), each line with how many times better chatbox is.

    python3 bench/report.py WORK PEER LABEL
"""
import json
import sys

work, peer, label = sys.argv[1], sys.argv[2], sys.argv[3]
r = {n: {k: json.load(open(f"{work}/{n}-{k}.json")) for k in ("idle", "max", "steady")} for n in ("chatbox", peer)}
rows = []


def row(name, c, s, better):
    # ratio: how many times better chatbox is (higher-is-better or lower-is-better)
    ratio = (c / s if better == "higher" else s / c) if c and s else float("nan")
    rows.append((name, c, s, ratio))


for n in ("chatbox", peer):
    for k in ("max", "steady"):
        if r[n][k]["lost"]:
            print(f"note: {n} lost {r[n][k]['lost']} deliveries in the {k} fan-out run")
c, s = r["chatbox"], r[peer]
row(f"idle: KiB per connection ({c['idle']['connections']} / {s['idle']['connections']} open)",
    c["idle"]["bytes_per_connection"] / 1024, s["idle"]["bytes_per_connection"] / 1024, "lower")
row("idle: seconds to open all", c["idle"]["establish_seconds"], s["idle"]["establish_seconds"], "lower")
row("fan-out max: deliveries/s", c["max"]["deliveries_per_second"], s["max"]["deliveries_per_second"], "higher")
row("fan-out max: p99 latency (ms)", c["max"]["latency"]["p99_ms"], s["max"]["latency"]["p99_ms"], "lower")
rate = c["steady"]["rate"] * c["steady"]["subscribers"]
for q in ("p50", "p90", "p99", "max"):
    row(f"fan-out at {rate:,.0f}/s: {q} (ms)", c["steady"]["latency"][f"{q}_ms"], s["steady"]["latency"][f"{q}_ms"], "lower")
row("fan-out: deliveries lost (both runs)", c["max"]["lost"] + c["steady"]["lost"], s["max"]["lost"] + s["steady"]["lost"], "lower")
w = max(len(x[0]) for x in rows)
lw = max(14, len(label))
print(f"{'':{w}}  {'chatbox':>12}  {label:>{lw}}  {'chatbox ×':>10}")
for name, cv, sv, ratio in rows:
    ratio_text = "-" if ratio != ratio else f"{ratio:.2f}"
    print(f"{name:{w}}  {cv:>12,.2f}  {sv:>{lw},.2f}  {ratio_text:>10}")
print("(chatbox ×: how many times better chatbox is on that line; above 1 means ahead)")
