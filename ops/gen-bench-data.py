#!/usr/bin/env python3
"""Data for ops/bench's rules comparison (standard library only, deterministic).

    python3 ops/gen-bench-data.py zones N > zones.geojson
        N zones scattered over the simulator's area (lat 22-45, lon 100-122): irregular polygons
        of 8-16 vertices, 0.05-0.5 degree across (some with a hole), about 8 % of the area in all;
        60 % truck speed limits of 40-80 km/h, 20 % expressways, 20 % no-entry zones for some
        classes in some hours.
    python3 ops/gen-bench-data.py registry N [PREFIX] > registry.csv
        N vehicles bound to the simulator's terminals PREFIX000001.. (default prefix sim):
        heavy trucks and semi-trailer tractors with valid permits.
"""
import csv
import json
import math
import random
import sys


def zones(n):
    rng = random.Random(1000)
    feats = []
    for i in range(n):
        lat = rng.uniform(22.3, 44.7)
        lon = rng.uniform(100.3, 121.7)
        r = rng.uniform(0.025, 0.25)  # degrees, half the width
        k = rng.randint(8, 16)
        ring = []
        for j in range(k):
            a = 2 * math.pi * j / k
            rr = r * rng.uniform(0.6, 1.0)
            ring.append([round(lon + rr * math.cos(a) / math.cos(math.radians(lat)), 6),
                         round(lat + rr * math.sin(a), 6)])
        ring.append(ring[0])
        rings = [ring]
        if rng.random() < 0.1:
            h = r * 0.2
            rings.append([[round(lon - h, 6), round(lat - h, 6)], [round(lon - h, 6), round(lat + h, 6)],
                          [round(lon + h, 6), round(lat + h, 6)], [round(lon + h, 6), round(lat - h, 6)],
                          [round(lon - h, 6), round(lat - h, 6)]])
        u = rng.random()
        props = {"name": "bench-zone-%04d" % (i + 1)}
        if u < 0.6:
            props.update(kind="speed_limit", limit_kmh=rng.choice([40, 50, 60, 70, 80]),
                         classes=["heavy_truck", "semi_trailer_tractor", "dangerous_goods"])
        elif u < 0.8:
            props.update(kind="speed_limit", is_expressway=True, limit_kmh=120)
        else:
            props.update(kind="no_entry", classes=rng.choice([["dangerous_goods"], ["converted_tractor", "tractor"]]))
            if rng.random() < 0.5:
                props.update({"from": "07:00", "to": "20:00"})
        feats.append({"type": "Feature", "properties": props,
                      "geometry": {"type": "Polygon", "coordinates": rings}})
    json.dump({"type": "FeatureCollection", "features": feats}, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


def registry(n, prefix):
    provinces = [("苏", "320100"), ("冀", "130100"), ("鲁", "370100"), ("豫", "410100"), ("陕", "610100"),
                 ("川", "510100"), ("鄂", "420100"), ("浙", "330100"), ("粤", "440100"), ("晋", "140100")]
    chars = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(["plate", "plate_colour", "class", "terminal_id", "region", "enterprise", "permit_no",
                "permit_expires", "status"])
    for i in range(1, n + 1):
        prov, region = provinces[i % len(provinces)]
        v, tail = i, ""
        for _ in range(5):
            tail = chars[v % len(chars)] + tail
            v //= len(chars)
        w.writerow([prov + "A" + tail, "yellow", "semi_trailer_tractor" if i % 4 == 0 else "heavy_truck",
                    "%s%06d" % (prefix, i), region, "%s压测运输有限公司%02d" % (prov, i % 50),
                    "%s交运管许可%06d号" % (prov, i), "2029-12-31", "active"])


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "zones":
        zones(int(sys.argv[2]))
    elif len(sys.argv) >= 3 and sys.argv[1] == "registry":
        registry(int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "sim")
    else:
        sys.exit(__doc__)
