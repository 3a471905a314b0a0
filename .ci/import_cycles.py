#!/usr/bin/env python3
"""Fails when source files of one crate import each other in a loop (`use crate::a::b` edges
between modules). Issue 12 broke an 8-file loop in `server`; this keeps it broken.

The check is per crate and per module file: `crate::api::sessions::X` is an edge to
`api/sessions.rs` (or `api/sessions/mod.rs`). Loops through parent `mod.rs` re-exports are not
edges (a `mod` declaration is not a use)."""
import os, re, sys

def modules(src):
    out = {}
    for root, _, files in os.walk(src):
        for f in files:
            if f.endswith('.rs'):
                path = os.path.join(root, f)
                rel = os.path.relpath(path, src)[:-3]
                parts = rel.split(os.sep)
                if parts[-1] in ('mod', 'lib', 'main'):
                    parts = parts[:-1]
                out['::'.join(parts)] = path
    return out

def edges(mods):
    graph = {m: set() for m in mods}
    for m, path in mods.items():
        # Comments and doc links are not imports.
        text = '\n'.join(l.split('//')[0] for l in open(path).read().split('\n'))
        # every crate:: path, in use lines and inline (crate::api::x::f(...))
        for hit in re.finditer(r'crate::((?:[a-z_][a-z0-9_]*::)*[a-z_][a-z0-9_]*)', text):
            segs = hit.group(1).split('::')
            for n in range(len(segs), 0, -1):
                target = '::'.join(segs[:n])
                if target in mods:
                    if target != m and target != '':
                        graph[m].add(target)
                    break
        # `use crate::{a, b::c}` groups
        for group in re.finditer(r'use crate::\{([^}]*)\}', text):
            for item in group.group(1).split(','):
                segs = item.strip().split('::')
                for n in range(len(segs), 0, -1):
                    target = '::'.join(segs[:n])
                    if target in mods and target != m:
                        graph[m].add(target)
                        break
    return graph

def cycles(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)
    def visit(v):
        index[v] = low[v] = counter[0]; counter[0] += 1
        stack.append(v); on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in graph:
        if v not in index:
            visit(v)
    return out

failed = False
for crate in sys.argv[1:]:
    found = cycles(edges(modules(os.path.join(crate, 'src'))))
    for comp in found:
        failed = True
        print(f"{crate}: {len(comp)} files import each other in a loop: {', '.join(comp)}")
sys.exit(1 if failed else 0)
