#!/usr/bin/env python3
"""Writes ops/demo-data/registry.csv: the vehicles behind the demo's simulated terminals.

    python3 ops/demo-data/gen-registry.py > ops/demo-data/registry.csv

Terminals (see `haulwatch-sim --help`):
  scn-*         the scripted fleet of `haulwatch-sim --scenario mixed --trucks 40`: 2 tired,
                2 speeder, 2 tractor, 2 dark and 32 ordinary trucks (scn-normal-001..032)
  sim000001..   the paced fleet of `haulwatch-sim --trucks 1000`
  plt000001..   150 vehicles a JT/T 809 platform forwards (`haulwatch-sim --protocol jt809`)
Registry facts the rules check, on purpose:
  scn-tractor-*      converted tractors (变型拖拉机), retired after 2025-12-31: retired_class
  scn-normal-001     a permit that expired on 2026-06-30: expired_permit
  scn-normal-002     a deregistered vehicle still on the road: deregistered_vehicle
  scn-normal-031/032, sim000991..sim001000   no vehicle: unregistered_terminal
  scn-normal-003..005 (and one paced truck in 60)   大吨小标 suspects (masses, below)
  013950000001..3, 013960000001   JT/T 808 trucks with active-safety devices (sim --scenario
                dsm, nodevice): alarms, and one device that stopped reporting
Deterministic: the same file on every run.
"""
import csv
import random
import sys

rng = random.Random(20260105)

# (plate prefix, GB/T 2260 region, city) of the provinces the simulated trucks drive through.
CITIES = [
    ("苏A", "320100", "南京"), ("苏B", "320200", "无锡"), ("苏E", "320500", "苏州"),
    ("冀A", "130100", "石家庄"), ("冀B", "130200", "唐山"), ("鲁A", "370100", "济南"),
    ("鲁B", "370200", "青岛"), ("豫A", "410100", "郑州"), ("陕A", "610100", "西安"),
    ("川A", "510100", "成都"), ("鄂A", "420100", "武汉"), ("湘A", "430100", "长沙"),
    ("皖A", "340100", "合肥"), ("浙A", "330100", "杭州"), ("粤A", "440100", "广州"),
    ("晋A", "140100", "太原"), ("渝A", "500100", "重庆"), ("桂A", "450100", "南宁"),
]
TRADES = ["物流", "货运", "运输", "钢运", "冷链物流", "供应链", "建材运输", "煤炭运输"]
SUFFIX = ["有限公司", "有限责任公司", "股份有限公司"]
PERMIT_CITY = {"南京": "宁", "无锡": "锡", "苏州": "苏", "石家庄": "石", "唐山": "唐", "济南": "济",
               "青岛": "青", "郑州": "郑", "西安": "西", "成都": "成", "武汉": "汉", "长沙": "长",
               "合肥": "合", "杭州": "杭", "广州": "穗", "太原": "并", "重庆": "渝", "南宁": "邕"}
VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
PLATE_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"

enterprises = {}


def enterprise(city):
    # A handful of carriers per city, so the per-enterprise statistics have something to group.
    names = enterprises.setdefault(city, [])
    if len(names) < 4 and (not names or rng.random() < 0.4):
        names.append(city + rng.choice(["顺达", "通运", "长风", "恒通", "安捷", "远航", "鑫源", "宏达",
                                        "华运", "金桥"]) + rng.choice(TRADES) + rng.choice(SUFFIX))
    return rng.choice(names)


used_plates = set()


def plate(prefix):
    while True:
        p = prefix + "".join(rng.choice(PLATE_CHARS) for _ in range(5))
        if p not in used_plates:
            used_plates.add(p)
            return p


def vin():
    return "".join(rng.choice(VIN_CHARS) for _ in range(17)) if rng.random() < 0.6 else ""


serial = [0]


def permit(region, city, expires="", none=False):
    if none:
        return "", ""
    serial[0] += 1
    no = "%s交运管许可%s字%s%06d号" % (PLATE_PREFIX[region], PERMIT_CITY[city], region, serial[0])
    if not expires:
        expires = "%d-%02d-%02d" % (rng.choice([2027, 2028, 2029]), rng.randint(1, 12), rng.randint(1, 28))
    return no, expires


PLATE_PREFIX = {region: p[0] for p, region, _ in CITIES}

rows = []


def add(terminal, cls, city_index=None, plate_no=None, status="active", expires="", no_permit=False):
    prefix, region, city = CITIES[city_index if city_index is not None else rng.randrange(len(CITIES))]
    p = plate_no or plate(prefix)
    used_plates.add(p)
    permit_no, permit_exp = permit(region, city, expires, no_permit)
    rows.append([p, "yellow", vin(), cls, terminal, region, enterprise(city), permit_no, permit_exp,
                 status])


# The scripted fleet: plates easy to spot in the violation list.
add("scn-tired-001", "heavy_truck", 0, "苏A12345")
add("scn-tired-002", "heavy_truck", 5, "鲁A23456")
add("scn-speeder-001", "heavy_truck", 3, "冀A34567")
add("scn-speeder-002", "semi_trailer_tractor", 3, "冀A45678")
add("scn-tractor-001", "converted_tractor", 5, "鲁A56789", no_permit=True)
add("scn-tractor-002", "converted_tractor", 7, "豫A67890", no_permit=True)
add("scn-dark-001", "semi_trailer_tractor", 8, "陕A78901")
add("scn-dark-002", "heavy_truck", 8, "陕A89012")
add("scn-normal-001", "heavy_truck", 1, "苏B90123", expires="2026-06-30")
add("scn-normal-002", "heavy_truck", 2, "苏E01234", status="deregistered")
for n in range(3, 31):
    add("scn-normal-%03d" % n, rng.choice(["heavy_truck", "heavy_truck", "semi_trailer_tractor"]))
# The paced fleet, the last ten unbound.
for n in range(1, 991):
    add("sim%06d" % n, rng.choice(["heavy_truck", "heavy_truck", "heavy_truck", "semi_trailer_tractor"]))
# Registered vehicles without a terminal yet (the registry is ahead of the installers).
for _ in range(5):
    r = rows.append
    prefix, region, city = CITIES[rng.randrange(len(CITIES))]
    permit_no, permit_exp = permit(region, city)
    r([plate(prefix), "yellow", vin(), "heavy_truck", "", region, enterprise(city), permit_no,
       permit_exp, "active"])

# Vehicles a subordinate platform forwards over JT/T 809 (ops/demo: `haulwatch-sim --protocol
# jt809`): bound to terminals plt000001..plt000150 that never connect themselves, so their
# positions land under these ids only through the platform. Last, so the rows above stay as they
# were.
for n in range(1, 151):
    add("plt%06d" % n, rng.choice(["heavy_truck", "heavy_truck", "semi_trailer_tractor"]))
# Trucks with active-safety devices (ops/demo: `haulwatch-sim --protocol jt808 --scenario dsm
# --trucks 3` and `--scenario nodevice`): the sim registers them with plates 京D<n> and 京E<n>.
# Last, so the rows above stay as they were.
for n in range(1, 4):
    add("01395%07d" % n, "heavy_truck" if n < 3 else "semi_trailer_tractor", 0, "京D%05d" % n)
add("013960000001", "heavy_truck", 0, "京E00001")

# The masses (axles, total, curb, rated load; kg) of the crackdown list `report registry-audit`
# (大吨小标), from their own generator so the columns above stay as they were. Honest figures add
# up within 300 kg and keep to GB 1589-2016 for the axle count; a few suspects do not, on purpose:
#   scn-normal-003     rated load far too small for its curb mass: load_small
#   scn-normal-004     25 t on 2 axles (limit 18 t): over_limit
#   scn-normal-005     total mass 4 t more than curb + rated load: mass_mismatch
#   one paced truck in 60, one of the three at random
mrng = random.Random(20261207)


def masses(terminal, cls):
    if cls == "converted_tractor":
        return ["", "", "", ""]
    if cls == "semi_trailer_tractor":
        axles, total = mrng.choice([(5, 43000), (6, 49000)])
        curb = mrng.randrange(14000, 17000, 100)
    else:
        axles, total = mrng.choice([(2, 18000), (3, 25000), (4, 31000)])
        curb = mrng.randrange(total * 4 // 10, total // 2, 100)
    rated = total - curb - mrng.randrange(0, 300, 10)
    kind = {"scn-normal-003": 0, "scn-normal-004": 1, "scn-normal-005": 2}.get(terminal)
    if kind is None and terminal.startswith("sim") and mrng.random() < 1 / 60:
        kind = mrng.randrange(3)
    if kind == 0:
        rated = curb // 5
        total = curb + rated
    elif kind == 1:
        axles, total = 2, 25000
        curb = 11000
        rated = total - curb
    elif kind == 2:
        total = curb + rated + 4000
    return [axles, total, curb, rated]


w = csv.writer(sys.stdout, lineterminator="\n")
w.writerow(["plate", "plate_colour", "vin", "class", "terminal_id", "region", "enterprise",
            "permit_no", "permit_expires", "status", "axles", "total_mass_kg", "curb_mass_kg",
            "rated_load_kg"])
w.writerows(r + masses(r[4], r[3]) for r in rows)
