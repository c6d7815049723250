import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from protos import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_AUTHENTIC: _ClassVar[Verdict]
    VERDICT_COUNTERFEIT: _ClassVar[Verdict]
    VERDICT_SUSPICIOUS: _ClassVar[Verdict]
    VERDICT_UNREADABLE: _ClassVar[Verdict]
VERDICT_UNSPECIFIED: Verdict
VERDICT_AUTHENTIC: Verdict
VERDICT_COUNTERFEIT: Verdict
VERDICT_SUSPICIOUS: Verdict
VERDICT_UNREADABLE: Verdict

class ImageRequest(_message.Message):
    __slots__ = ("image", "k", "category")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    k: int
    category: str
    def __init__(self, image: _Optional[bytes] = ..., k: _Optional[int] = ..., category: _Optional[str] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("product_id", "label", "score", "category")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    label: str
    score: float
    category: str
    def __init__(self, product_id: _Optional[str] = ..., label: _Optional[str] = ..., score: _Optional[float] = ..., category: _Optional[str] = ...) -> None: ...

class IdentifyResponse(_message.Message):
    __slots__ = ("product_id", "label", "category", "confidence", "known", "top_k", "model_version")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    label: str
    category: str
    confidence: float
    known: bool
    top_k: _containers.RepeatedCompositeFieldContainer[Candidate]
    model_version: str
    def __init__(self, product_id: _Optional[str] = ..., label: _Optional[str] = ..., category: _Optional[str] = ..., confidence: _Optional[float] = ..., known: _Optional[bool] = ..., top_k: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...

class SearchResult(_message.Message):
    __slots__ = ("product_id", "score", "label", "category")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    score: float
    label: str
    category: str
    def __init__(self, product_id: _Optional[str] = ..., score: _Optional[float] = ..., label: _Optional[str] = ..., category: _Optional[str] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("results", "model_version")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SearchResult]
    model_version: str
    def __init__(self, results: _Optional[_Iterable[_Union[SearchResult, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("image", "location", "scanned_by", "payload", "client_id", "trusted")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    SCANNED_BY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    TRUSTED_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    location: str
    scanned_by: str
    payload: str
    client_id: str
    trusted: bool
    def __init__(self, image: _Optional[bytes] = ..., location: _Optional[str] = ..., scanned_by: _Optional[str] = ..., payload: _Optional[str] = ..., client_id: _Optional[str] = ..., trusted: _Optional[bool] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("verdict", "product_id", "batch", "serial", "reasons", "scan_count", "first_scanned_at", "issued_at", "counted", "revocation")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    SCAN_COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_SCANNED_AT_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    COUNTED_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_FIELD_NUMBER: _ClassVar[int]
    verdict: Verdict
    product_id: str
    batch: str
    serial: str
    reasons: _containers.RepeatedScalarFieldContainer[str]
    scan_count: int
    first_scanned_at: _timestamp_pb2.Timestamp
    issued_at: _timestamp_pb2.Timestamp
    counted: bool
    revocation: Revocation
    def __init__(self, verdict: _Optional[_Union[Verdict, str]] = ..., product_id: _Optional[str] = ..., batch: _Optional[str] = ..., serial: _Optional[str] = ..., reasons: _Optional[_Iterable[str]] = ..., scan_count: _Optional[int] = ..., first_scanned_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., counted: _Optional[bool] = ..., revocation: _Optional[_Union[Revocation, _Mapping]] = ...) -> None: ...

class IssueCodesRequest(_message.Message):
    __slots__ = ("product_id", "batch", "count", "skip_png")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SKIP_PNG_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    batch: str
    count: int
    skip_png: bool
    def __init__(self, product_id: _Optional[str] = ..., batch: _Optional[str] = ..., count: _Optional[int] = ..., skip_png: _Optional[bool] = ...) -> None: ...

class AuthenticityCode(_message.Message):
    __slots__ = ("serial", "payload", "signature", "png")
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    serial: str
    payload: str
    signature: str
    png: bytes
    def __init__(self, serial: _Optional[str] = ..., payload: _Optional[str] = ..., signature: _Optional[str] = ..., png: _Optional[bytes] = ...) -> None: ...

class IssueCodesResponse(_message.Message):
    __slots__ = ("product_id", "batch", "codes", "key_id", "issued_at")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    CODES_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    batch: str
    codes: _containers.RepeatedCompositeFieldContainer[AuthenticityCode]
    key_id: str
    issued_at: _timestamp_pb2.Timestamp
    def __init__(self, product_id: _Optional[str] = ..., batch: _Optional[str] = ..., codes: _Optional[_Iterable[_Union[AuthenticityCode, _Mapping]]] = ..., key_id: _Optional[str] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ScansByRequest(_message.Message):
    __slots__ = ("scanned_by",)
    SCANNED_BY_FIELD_NUMBER: _ClassVar[int]
    scanned_by: str
    def __init__(self, scanned_by: _Optional[str] = ...) -> None: ...

class ScansByResponse(_message.Message):
    __slots__ = ("scans",)
    SCANS_FIELD_NUMBER: _ClassVar[int]
    scans: _containers.RepeatedCompositeFieldContainer[RecordedScan]
    def __init__(self, scans: _Optional[_Iterable[_Union[RecordedScan, _Mapping]]] = ...) -> None: ...

class RecordedScan(_message.Message):
    __slots__ = ("serial", "product_id", "scanned_at", "location", "place", "counted")
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    SCANNED_AT_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    PLACE_FIELD_NUMBER: _ClassVar[int]
    COUNTED_FIELD_NUMBER: _ClassVar[int]
    serial: str
    product_id: str
    scanned_at: _timestamp_pb2.Timestamp
    location: str
    place: str
    counted: bool
    def __init__(self, serial: _Optional[str] = ..., product_id: _Optional[str] = ..., scanned_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., location: _Optional[str] = ..., place: _Optional[str] = ..., counted: _Optional[bool] = ...) -> None: ...

class Revocation(_message.Message):
    __slots__ = ("scope", "product_id", "batch", "serial", "reason", "revoked_by", "revoked_at")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REVOKED_BY_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    scope: str
    product_id: str
    batch: str
    serial: str
    reason: str
    revoked_by: str
    revoked_at: _timestamp_pb2.Timestamp
    def __init__(self, scope: _Optional[str] = ..., product_id: _Optional[str] = ..., batch: _Optional[str] = ..., serial: _Optional[str] = ..., reason: _Optional[str] = ..., revoked_by: _Optional[str] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RevokeCodesRequest(_message.Message):
    __slots__ = ("batch", "serial", "product_id", "reason", "revoked_by")
    BATCH_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REVOKED_BY_FIELD_NUMBER: _ClassVar[int]
    batch: str
    serial: str
    product_id: str
    reason: str
    revoked_by: str
    def __init__(self, batch: _Optional[str] = ..., serial: _Optional[str] = ..., product_id: _Optional[str] = ..., reason: _Optional[str] = ..., revoked_by: _Optional[str] = ...) -> None: ...

class RevokeCodesResponse(_message.Message):
    __slots__ = ("revocation", "already_revoked", "codes")
    REVOCATION_FIELD_NUMBER: _ClassVar[int]
    ALREADY_REVOKED_FIELD_NUMBER: _ClassVar[int]
    CODES_FIELD_NUMBER: _ClassVar[int]
    revocation: Revocation
    already_revoked: bool
    codes: int
    def __init__(self, revocation: _Optional[_Union[Revocation, _Mapping]] = ..., already_revoked: _Optional[bool] = ..., codes: _Optional[int] = ...) -> None: ...

class CodeScansRequest(_message.Message):
    __slots__ = ("serial", "limit", "before")
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    serial: str
    limit: int
    before: str
    def __init__(self, serial: _Optional[str] = ..., limit: _Optional[int] = ..., before: _Optional[str] = ...) -> None: ...

class CodeScan(_message.Message):
    __slots__ = ("scanned_at", "place", "scanned_by", "client_id", "trusted", "counted")
    SCANNED_AT_FIELD_NUMBER: _ClassVar[int]
    PLACE_FIELD_NUMBER: _ClassVar[int]
    SCANNED_BY_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    TRUSTED_FIELD_NUMBER: _ClassVar[int]
    COUNTED_FIELD_NUMBER: _ClassVar[int]
    scanned_at: _timestamp_pb2.Timestamp
    place: str
    scanned_by: str
    client_id: str
    trusted: bool
    counted: bool
    def __init__(self, scanned_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., place: _Optional[str] = ..., scanned_by: _Optional[str] = ..., client_id: _Optional[str] = ..., trusted: _Optional[bool] = ..., counted: _Optional[bool] = ...) -> None: ...

class CodeScansResponse(_message.Message):
    __slots__ = ("serial", "product_id", "batch", "key_id", "issued_at", "scan_count", "counted_scans", "places", "first_scanned_at", "last_scanned_at", "revocation", "scans", "next_before")
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    SCAN_COUNT_FIELD_NUMBER: _ClassVar[int]
    COUNTED_SCANS_FIELD_NUMBER: _ClassVar[int]
    PLACES_FIELD_NUMBER: _ClassVar[int]
    FIRST_SCANNED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SCANNED_AT_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_FIELD_NUMBER: _ClassVar[int]
    SCANS_FIELD_NUMBER: _ClassVar[int]
    NEXT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    serial: str
    product_id: str
    batch: str
    key_id: str
    issued_at: _timestamp_pb2.Timestamp
    scan_count: int
    counted_scans: int
    places: int
    first_scanned_at: _timestamp_pb2.Timestamp
    last_scanned_at: _timestamp_pb2.Timestamp
    revocation: Revocation
    scans: _containers.RepeatedCompositeFieldContainer[CodeScan]
    next_before: str
    def __init__(self, serial: _Optional[str] = ..., product_id: _Optional[str] = ..., batch: _Optional[str] = ..., key_id: _Optional[str] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., scan_count: _Optional[int] = ..., counted_scans: _Optional[int] = ..., places: _Optional[int] = ..., first_scanned_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_scanned_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revocation: _Optional[_Union[Revocation, _Mapping]] = ..., scans: _Optional[_Iterable[_Union[CodeScan, _Mapping]]] = ..., next_before: _Optional[str] = ...) -> None: ...
