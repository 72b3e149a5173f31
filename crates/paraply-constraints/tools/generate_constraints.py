#!/usr/bin/env python3
"""Generates src/r4.rs: the FHIRPath invariants (`constraint`s of severity `error`) of the
R4 4.0.1 resource types Paraply serves and of the data types they use, and a tree of element
names telling the checker where in a resource's JSON each invariant applies.

Run from the repository root, with ../shared beside it:

    python3 crates/paraply-constraints/tools/generate_constraints.py

The output is committed. Invariants listed in SKIPPED are left out, with the reason.
"""
import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
DEFINITIONS = os.path.join(ROOT, "..", "shared", "fhir-r4", "definitions")
RESOURCES = os.path.join(DEFINITIONS, "profiles-resources.subset.json")
TYPES = os.path.join(DEFINITIONS, "profiles-types.json")
TARGET = os.path.join(HERE, "..", "src", "r4.rs")

SERVED = """Appointment AppointmentResponse AuditEvent CarePlan CareTeam Communication
CommunicationRequest Composition Consent DocumentReference Encounter Goal Group HealthcareService
Location Organization Patient Practitioner PractitionerRole Provenance RelatedPerson
Schedule Slot Subscription Task""".split()

# key -> why it is not checked. Keep in step with the skip list in src/lib.rs docs.
SKIPPED = {
    "ele-1": "applies to every element of every resource (cost); empty elements are a parser concern",
    "dom-3": "needs descendants() over the whole resource and reference matching; contained resources are rare in Paraply",
    "txt-1": "htmlChecks() is a narrative XHTML validator, not FHIRPath",
    "txt-2": "htmlChecks() is a narrative XHTML validator, not FHIRPath",
    "rng-2": "compares two Quantities, which needs unit conversion (UCUM)",
    "eld-19": "ElementDefinition is not used by served resources",
    "eld-20": "ElementDefinition is not used by served resources",
}

def load(path):
    with open(path) as f:
        return {e["resource"]["id"]: e["resource"] for e in json.load(f)["entry"]}

resources = load(RESOURCES)
types = load(TYPES)

def elements(sd):
    return sd["snapshot"]["element"]

# node name -> {"constraints": [(key, severity, human, expression, source)], "children": {json_name: node_name}}
nodes = {}

def rust_ident(name):
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()

def type_node(code, profiles):
    """The node of a data type (or None for primitives and types without a definition)."""
    for p in profiles:
        name = p.rsplit("/", 1)[-1]
        if name in ("SimpleQuantity", "MoneyQuantity"):
            return build_type(name)
    if code in types and types[code]["kind"] == "complex-type" and code not in ("Element", "BackboneElement"):
        return build_type(code)
    return None

def build_type(name):
    if name in nodes:
        return name
    nodes[name] = {"constraints": [], "children": {}}
    sd = types[name]
    build_elements(name, sd, name)
    return name

def constraints_of(element):
    out = []
    for c in element.get("constraint", []):
        if c.get("severity") != "error" or c["key"] in SKIPPED or "expression" not in c:
            continue
        out.append((c["key"], c["human"], c["expression"], element["path"]))
    return out

def build_elements(node_name, sd, root_path):
    """Fills the nodes of one StructureDefinition: root_path is its first element's path."""
    elems = elements(sd)
    by_path = {e["path"]: e for e in elems}
    path_node = {root_path: node_name}
    for e in elems:
        path = e["path"]
        if path == root_path:
            nodes[node_name]["constraints"] += constraints_of(e)
            continue
        parent, _, name = path.rpartition(".")
        parent_node = path_node.get(parent)
        if parent_node is None:
            continue
        if name in ("id",) or e.get("max") == "0":
            continue
        if "contentReference" in e:
            target = e["contentReference"].lstrip("#")
            path_node[path] = path_node.get(target, sd["type"] + "." + target)
            nodes[parent_node]["children"][name] = path_node[path]
            continue
        tys = e.get("type", [])
        codes = [t["code"] for t in tys]
        if any(c in ("BackboneElement", "Element") for c in codes):
            child = path
            nodes.setdefault(child, {"constraints": [], "children": {}})
            nodes[child]["constraints"] += constraints_of(e)
            path_node[path] = child
            nodes[parent_node]["children"][name] = child
            continue
        if name == "contained":
            continue  # contained resources are not checked against their own type's invariants
        inherited = {c["key"] for t in tys if t["code"] in types
                     for c in elements(types[t["code"]])[0].get("constraint", [])}
        own_constraints = [c for c in constraints_of(e) if c[0] not in inherited]
        if own_constraints:
            # invariants placed on an element of a data type (e.g. Organization.telecom org-3)
            # are evaluated on the element's instances: a node of its own extends the type's.
            own = path
            nodes.setdefault(own, {"constraints": [], "children": {}, "extends": None})
            nodes[own]["constraints"] += own_constraints
            base = type_node(codes[0], tys[0].get("profile", [])) if len(codes) == 1 else None
            nodes[own]["extends"] = base
            nodes[parent_node]["children"][name] = own
            continue
        if name.endswith("[x]"):
            stem = name[:-3]
            for t in tys:
                n = type_node(t["code"], t.get("profile", []))
                if n:
                    nodes[parent_node]["children"][stem + t["code"][0].upper() + t["code"][1:]] = n
            continue
        if len(tys) == 1:
            n = type_node(tys[0]["code"], tys[0].get("profile", []))
            if n:
                nodes[parent_node]["children"][name] = n

roots = []
for r in SERVED:
    if r not in resources:
        continue
    nodes[r] = {"constraints": [], "children": {}}
    sd = resources[r]
    build_elements(r, sd, r)
    roots.append(r)

# Fold "extends" nodes: own constraints plus the base type's constraints and children.
for name, n in nodes.items():
    base = n.get("extends")
    if base:
        n["constraints"] = nodes[base]["constraints"] + n["constraints"]
        n["children"] = dict(nodes[base]["children"], **n["children"])

# Prune: keep only nodes from which some constraint is reachable.
useful = {name for name, n in nodes.items() if n["constraints"]}
changed = True
while changed:
    changed = False
    for name, n in nodes.items():
        if name not in useful and any(c in useful for c in n["children"].values()):
            useful.add(name)
            changed = True
reachable = set()
stack = list(roots)
while stack:
    name = stack.pop()
    if name in reachable or name not in useful:
        continue
    reachable.add(name)
    stack += [c for c in nodes[name]["children"].values()]

constraint_ids = {}
constraint_list = []
for name in sorted(reachable):
    for c in nodes[name]["constraints"]:
        if c[:3] not in constraint_ids:
            constraint_ids[c[:3]] = len(constraint_list)
            constraint_list.append(c)

def lit(s):
    return json.dumps(s, ensure_ascii=False)

out = []
out.append("// @generated by crates/paraply-constraints/tools/generate_constraints.py from the official")
out.append("// R4 4.0.1 StructureDefinitions. Do not edit by hand; run the script again.")
out.append("")
out.append("use crate::invariants::{Invariant, Node};")
out.append("")
out.append("/// Every invariant checked, in one table (an invariant shared by several elements is here once).")
out.append(f"pub(crate) static INVARIANTS: [Invariant; {len(constraint_list)}] = [")
for key, human, expr, source in constraint_list:
    out.append("    Invariant {")
    out.append(f"        key: {lit(key)},")
    out.append(f"        human: {lit(human)},")
    out.append(f"        expression: {lit(expr)},")
    out.append(f"        source: {lit(source)},")
    out.append("    },")
out.append("];")
out.append("")
for name in sorted(reachable):
    n = nodes[name]
    out.append(f"static {rust_ident(name)}: Node = Node {{")
    idx = ", ".join(str(constraint_ids[c[:3]]) for c in n["constraints"])
    out.append(f"    invariants: &[{idx}],")
    kids = sorted((k, v) for k, v in n["children"].items() if v in reachable)
    if kids:
        out.append("    children: &[")
        for k, v in kids:
            out.append(f"        ({lit(k)}, &{rust_ident(v)}),")
        out.append("    ],")
    else:
        out.append("    children: &[],")
    out.append("};")
out.append("")
out.append("/// The element tree of a served resource type, or `None` for a type without invariants here.")
out.append("pub(crate) fn resource_node(resource_type: &str) -> Option<&'static Node> {")
out.append("    match resource_type {")
for r in roots:
    if r in reachable:
        out.append(f"        {lit(r)} => Some(&{rust_ident(r)}),")
out.append("        _ => None,")
out.append("    }")
out.append("}")
out.append("")
out.append("/// Served types whose StructureDefinition is not in ../shared (their own invariants are not checked).")
missing = [r for r in SERVED if r not in resources]
out.append(f"pub const TYPES_WITHOUT_DEFINITION: &[&str] = &[{', '.join(lit(m) for m in missing)}];")
out.append("")
out.append("/// Invariants deliberately not checked, with the reason.")
out.append("pub const SKIPPED: &[(&str, &str)] = &[")
for k in sorted(SKIPPED):
    out.append(f"    ({lit(k)}, {lit(SKIPPED[k])}),")
out.append("];")

with open(TARGET, "w") as f:
    f.write("\n".join(out) + "\n")
print(f"{len(constraint_list)} invariants, {len(reachable)} nodes, missing definitions: {missing}")
