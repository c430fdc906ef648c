"""Sparkplug B 3.0 on the wire: the payload schema, topics, data types and quality codes.

The payload is the Sparkplug B protobuf message (``org.eclipse.tahu.protobuf.Payload``). The
schema is declared here field by field with protobuf's own descriptor API and compiled by the
``protobuf`` library at import, so no generated module and no ``protoc`` step are needed; the
field numbers and types are those of the specification's ``sparkplug_b.proto`` (Sparkplug 3.0
§6.4), which keeps the bytes interoperable with any Sparkplug host. Only the parts this
system uses are declared (payload, metric, property set); fields it does not declare, such as
data sets and templates from another node, are kept as unknown fields, not dropped.

docs/ARCHITECTURE.md "Campus (Sparkplug B)" says how the edge node and the central host use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from facility.domain.model import Quality

NAMESPACE = "spBv1.0"

# Sparkplug 3.0 §6.4.16 data types (the values the datatype field carries)
INT32, INT64, UINT64, FLOAT, DOUBLE, BOOLEAN, STRING = 3, 4, 8, 9, 10, 11, 12

# Sparkplug 3.0 §6.4.8 quality codes, carried in the metric's 'Quality' property (Int32)
SP_BAD, SP_GOOD, SP_STALE = 0, 192, 500


def _build_payload_class():
    F = descriptor_pb2.FieldDescriptorProto
    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    fd = descriptor_pb2.FileDescriptorProto(name="facility_sparkplug_b.proto",
                                           package="org.eclipse.tahu.protobuf", syntax="proto2")
    payload = fd.message_type.add(name="Payload")

    def add(msg, name, number, ftype, label=opt, type_name=None, oneof=None):
        f = msg.field.add(name=name, number=number, type=ftype, label=label)
        if type_name:
            f.type_name = type_name
        if oneof is not None:
            f.oneof_index = oneof

    pv = payload.nested_type.add(name="PropertyValue")
    add(pv, "type", 1, F.TYPE_UINT32)
    add(pv, "is_null", 2, F.TYPE_BOOL)
    pv.oneof_decl.add(name="value")
    for name, num, t in (("int_value", 3, F.TYPE_UINT32), ("long_value", 4, F.TYPE_UINT64),
                         ("float_value", 5, F.TYPE_FLOAT), ("double_value", 6, F.TYPE_DOUBLE),
                         ("boolean_value", 7, F.TYPE_BOOL), ("string_value", 8, F.TYPE_STRING)):
        add(pv, name, num, t, oneof=0)
    ps = payload.nested_type.add(name="PropertySet")
    add(ps, "keys", 1, F.TYPE_STRING, rep)
    add(ps, "values", 2, F.TYPE_MESSAGE, rep, ".org.eclipse.tahu.protobuf.Payload.PropertyValue")
    m = payload.nested_type.add(name="Metric")
    add(m, "name", 1, F.TYPE_STRING)
    add(m, "alias", 2, F.TYPE_UINT64)
    add(m, "timestamp", 3, F.TYPE_UINT64)
    add(m, "datatype", 4, F.TYPE_UINT32)
    add(m, "is_historical", 5, F.TYPE_BOOL)
    add(m, "is_transient", 6, F.TYPE_BOOL)
    add(m, "is_null", 7, F.TYPE_BOOL)
    add(m, "properties", 9, F.TYPE_MESSAGE, type_name=".org.eclipse.tahu.protobuf.Payload.PropertySet")
    m.oneof_decl.add(name="value")
    for name, num, t in (("int_value", 10, F.TYPE_UINT32), ("long_value", 11, F.TYPE_UINT64),
                         ("float_value", 12, F.TYPE_FLOAT), ("double_value", 13, F.TYPE_DOUBLE),
                         ("boolean_value", 14, F.TYPE_BOOL), ("string_value", 15, F.TYPE_STRING),
                         ("bytes_value", 16, F.TYPE_BYTES)):
        add(m, name, num, t, oneof=0)
    add(payload, "timestamp", 1, F.TYPE_UINT64)
    add(payload, "metrics", 2, F.TYPE_MESSAGE, rep, ".org.eclipse.tahu.protobuf.Payload.Metric")
    add(payload, "seq", 3, F.TYPE_UINT64)
    add(payload, "uuid", 4, F.TYPE_STRING)
    add(payload, "body", 5, F.TYPE_BYTES)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("org.eclipse.tahu.protobuf.Payload"))


Payload = _build_payload_class()
"""The Sparkplug B payload message class (``Payload()``, ``.SerializeToString()``,
``Payload.FromString(data)``)."""


def quality_code(quality: int) -> int:
    """Our sample quality as a Sparkplug quality code: GOOD 192, STALE 500, anything else BAD 0
    (a failed read is BAD, never a good zero)."""
    if quality == Quality.GOOD:
        return SP_GOOD
    if quality == Quality.STALE:
        return SP_STALE
    return SP_BAD


def topic(group: str, kind: str, node: str, device: str | None = None) -> str:
    """``spBv1.0/<group>/<kind>/<node>[/<device>]`` (Sparkplug 3.0 §4.1)."""
    return "/".join([NAMESPACE, group, kind, node] + ([device] if device else []))


def state_topic(host_id: str) -> str:
    """The primary host's STATE topic, ``spBv1.0/STATE/<host_id>`` (Sparkplug 3.0 §4.1.3)."""
    return f"{NAMESPACE}/STATE/{host_id}"


def state_payload(online: bool, ts_ms: int) -> bytes:
    """A STATE message body: UTF-8 JSON ``{"online": ..., "timestamp": ...}``."""
    return json.dumps({"online": online, "timestamp": ts_ms}).encode()


@dataclass(frozen=True)
class Topic:
    """A parsed Sparkplug topic."""

    group: str
    kind: str
    node: str
    device: str | None = None


def parse_topic(text: str) -> Topic | None:
    """``Topic`` of a Sparkplug B topic, or None for anything else (STATE included)."""
    parts = text.split("/")
    if len(parts) not in (4, 5) or parts[0] != NAMESPACE or parts[1] == "STATE":
        return None
    return Topic(parts[1], parts[2], parts[3], parts[4] if len(parts) == 5 else None)


class Seq:
    """The edge node's message sequence: 0 for NBIRTH, then +1 per message, 255 wraps to 0
    (Sparkplug 3.0 tck-id-payloads-sequence-num-incrementing)."""

    def __init__(self) -> None:
        self.value = 0

    def birth(self) -> int:
        self.value = 0
        return 0

    def next(self) -> int:
        self.value = (self.value + 1) % 256
        return self.value


def add_metric(payload, *, name: str | None = None, alias: int | None = None, ts_ms: int,
               datatype: int, value=None, historical: bool = False,
               properties: dict | None = None):
    """Append one metric; ``value`` None is sent as is_null (never a fake zero)."""
    m = payload.metrics.add()
    if name is not None:
        m.name = name
    if alias is not None:
        m.alias = alias
    m.timestamp = ts_ms
    m.datatype = datatype
    if historical:
        m.is_historical = True
    if value is None:
        m.is_null = True
    elif datatype == BOOLEAN:
        m.boolean_value = bool(value)
    elif datatype == DOUBLE:
        m.double_value = float(value)
    elif datatype == FLOAT:
        m.float_value = float(value)
    elif datatype in (INT64, UINT64):
        m.long_value = int(value) & 0xFFFF_FFFF_FFFF_FFFF
    elif datatype == INT32:
        m.int_value = int(value) & 0xFFFF_FFFF
    else:
        m.string_value = str(value)
    for key, (ptype, pval) in (properties or {}).items():
        m.properties.keys.append(key)
        pv = m.properties.values.add()
        pv.type = ptype
        if pval is None:
            pv.is_null = True
        elif ptype == INT32:
            pv.int_value = int(pval) & 0xFFFF_FFFF
        elif ptype == DOUBLE:
            pv.double_value = float(pval)
        else:
            pv.string_value = str(pval)
    return m


def metric_value(m):
    """The value of a metric (None when is_null or unset); INT64 read back as signed."""
    if m.is_null:
        return None
    which = m.WhichOneof("value")
    if which is None:
        return None
    v = getattr(m, which)
    if which == "long_value" and m.datatype == INT64 and v >= 2**63:
        v -= 2**64
    return v


def properties(m) -> dict:
    """A metric's property set as ``{key: value}``."""
    out = {}
    for key, pv in zip(m.properties.keys, m.properties.values):
        which = pv.WhichOneof("value")
        v = None if pv.is_null or which is None else getattr(pv, which)
        if which == "int_value" and pv.type == INT32 and v is not None and v >= 2**31:
            v -= 2**32
        out[key] = v
    return out
