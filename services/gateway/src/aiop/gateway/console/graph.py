"""A workflow's steps laid out as a graph, left to right, for the console to draw as SVG.

A layered layout: a step's column is the length of the longest chain of needs before
it, so every edge points right; within a column, steps are ordered by where the steps
they need sit (one barycentre pass), which keeps most edges from crossing. Done here,
on the server, the page needs no layout library and the graph is drawn the same in every
browser.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NODE_W = 200
NODE_H = 58
GAP_X = 60
GAP_Y = 18
PAD = 10


@dataclass(frozen=True)
class Node:
    name: str
    x: int
    y: int
    step: Mapping[str, Any]


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: str  # SVG path data


@dataclass(frozen=True)
class Graph:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def columns(steps: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Each step's column: 0 for a step that needs nothing, else one past its needs'."""
    needs = {s["name"]: list(s.get("needs", [])) for s in steps}
    column: dict[str, int] = {}

    def place(name: str, seen: frozenset[str]) -> int:
        if name in column:
            return column[name]
        if name in seen:  # a cycle is refused at submission; never loop on one
            return 0
        before = [place(n, seen | {name}) for n in needs.get(name, []) if n in needs]
        column[name] = 1 + max(before) if before else 0
        return column[name]

    for name in needs:
        place(name, frozenset())
    return column


def layout(steps: Sequence[Mapping[str, Any]]) -> Graph:
    column = columns(steps)
    by_name = {s["name"]: s for s in steps}
    layers: dict[int, list[str]] = {}
    for s in steps:  # the workflow's own order first: stable between redraws
        layers.setdefault(column[s["name"]], []).append(s["name"])
    row: dict[str, float] = {}
    for c in sorted(layers):
        names = layers[c]
        if c > 0:

            def centre(name: str) -> float:
                parents = [row[n] for n in by_name[name].get("needs", []) if n in row]
                return sum(parents) / len(parents) if parents else 0.0

            names.sort(key=centre)
        for i, name in enumerate(names):
            row[name] = i
    nodes = [
        Node(
            name,
            PAD + column[name] * (NODE_W + GAP_X),
            PAD + int(row[name]) * (NODE_H + GAP_Y),
            by_name[name],
        )
        for c in sorted(layers)
        for name in layers[c]
    ]
    at = {n.name: n for n in nodes}
    edges = []
    for node in nodes:
        for need in node.step.get("needs", []):
            if need in at:
                edges.append(Edge(need, node.name, _curve(at[need], node)))
    width = PAD * 2 + (max(column.values(), default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    tallest = max((len(names) for names in layers.values()), default=1)
    height = PAD * 2 + tallest * (NODE_H + GAP_Y) - GAP_Y
    return Graph(nodes, edges, width, height)


def _curve(source: Node, target: Node) -> str:
    x1, y1 = source.x + NODE_W, source.y + NODE_H // 2
    x2, y2 = target.x, target.y + NODE_H // 2
    bend = (x2 - x1) // 2
    return f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"
