"""What the scripts answer and the modes they take, as enums, and the vocabulary the Lua sees.

Each script replies with a member of one of these enums (or takes one as an argument); a
script spells `ADMIT.CONFLICT`, never the bare string, and text.py writes each such member in
as its string from VOCABULARY (a member an enum lacks fails when the script's text is made).
"""

from __future__ import annotations

from enum import Enum, StrEnum

from ..status import (
    ConflictPolicy,
    DeliveryOutcome,
    ErrorType,
    EventKind,
    ReleaseReason,
    RunStatus,
)


class AdmitReply(StrEnum):
    ADMITTED = "admitted"
    EXISTING = "existing"
    CONFLICT = "conflict"
    PENDING = "became_pending"
    JOINED = "joined"
    NEED_MESSAGE = "need_message"


class StartReply(StrEnum):
    STARTED = "started"
    REFUSED = "refused"
    MISSING = "missing"


class FinishReply(StrEnum):
    FINISHED = "finished"
    UNCHANGED = "unchanged"
    MISSING = "missing"


class FinishMode(StrEnum):
    """Who is finishing the run; see finish.lua's header."""

    OUTCOME = "outcome"
    CANCEL = "cancel"
    QUEUED_ONLY = "queued_only"
    BODY_GONE = "body_gone"


class ReadFields(StrEnum):
    """What read.lua hands back: the whole run, or its summary (no input, result or logs)."""

    FULL = "full"
    SUMMARY = "summary"


class LogReply(StrEnum):
    APPENDED = "appended"
    CUT = "cut"
    FULL = "full"
    NO_RUN = "no_run"


class BeatVerdict(StrEnum):
    RENEWED = "renewed"
    REACQUIRED = "reacquired"
    NOT_OURS = "not_ours"
    TERMINAL = "terminal"
    NOT_STARTED = "not_started"


#: Lua table name → the enum it is generated from.
class DeclareReply(StrEnum):
    """declare.lua's reply: the script needs keys its caller did not declare (base.py)."""

    NEED_KEYS = "need_keys"


VOCABULARY: dict[str, type[Enum]] = {
    "STATUS": RunStatus, "ERROR": ErrorType, "REASON": ReleaseReason, "POLICY": ConflictPolicy,
    "ADMIT": AdmitReply, "START": StartReply, "FINISH": FinishReply, "FINISH_MODE": FinishMode,
    "BEAT": BeatVerdict, "EVENT": EventKind, "READ": ReadFields, "LOG": LogReply,
    "DELIVERY": DeliveryOutcome, "DECLARE": DeclareReply,
}
