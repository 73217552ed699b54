"""The Lua scripts (`*.lua` beside this file) and one typed wrapper per script; this package
only re-exports, so callers say `lua.Admit`, `from worker.core.lua import Admitted`.

Every change of a slot or of a run's status happens inside one of these scripts, atomically;
each touches only keys of one workflow (one hash tag), so it is atomic on a cluster too. A
script's header lists its KEYS, ARGV and every reply; its wrapper builds the arguments from
typed values and turns the reply into a typed value, so nothing else indexes a reply.

A script's source (text.py) is: the prelude generated from `worker/core/status.py`
(`TERMINAL[status]`, summary_fields()), then `declare.lua`
(`need()`: a key learned by reading, asked of the caller if undeclared), `lib.lua`
(`release()`: the one place a slot is freed), then the script's own file; each member of the
vocabulary they spell (`STATUS.RUNNING`, `REASON.REPLACED`, `ADMIT.CONFLICT`: the enums of
status.py and replies.py) written in as its string (an unknown member fails when the text is
made, not a silent nil).

- replies.py    the reply and mode enums, and VOCABULARY (Lua table → enum)
- text.py       prelude(), inline() and source(): what Redis runs
- base.py       LuaScript (called again with the keys a script asks for), and the decoding
                several replies share
- admission.py  Admit (admit.lua)
- running.py    Start, Heartbeat, AppendLog (the worker's calls while a run executes)
- ending.py     Finish, ForceRelease, Promote (a pending run's upkeep)
- reading.py    Read, RunSnapshot; Existing (which of many workflows have a key: the sweeps)
- workers.py    Advertise, Workers (worker liveness)
- webhooks.py   Attach, TakeEnding, DeliveryLog (a run's side); WebhookSchedule, WebhookClaim,
                WebhookBegin, WebhookEnd (the deliveries' side, hash tag `{_webhooks}`)
"""

from __future__ import annotations

from .admission import (
    Admit,
    AdmitResult,
    Admitted,
    AlreadyAdmitted,
    Busy,
    Joined,
    Message,
    Pending,
)
from .base import LuaScript, OnPendingExpired, OnPromoted
from .ending import Finish, Finished, ForceRelease, ForceReleased, Promote, Upkept
from .reading import Existing, Read, RunSnapshot
from .replies import (
    VOCABULARY,
    AdmitReply,
    BeatVerdict,
    FinishMode,
    FinishReply,
    LogReply,
    ReadFields,
    StartReply,
)
from .running import AppendLog, Beat, Heartbeat, Refused, Start, Started
from .text import HERE, prelude, source
from .webhooks import (
    Attach,
    Attempt,
    DeliveryLog,
    TakeEnding,
    WebhookBegin,
    WebhookClaim,
    WebhookEnd,
    WebhookSchedule,
)
from .workers import Advertise, WorkerInfo, Workers

ALL: tuple[type[LuaScript], ...] = (Admit, Start, Finish, Read, Heartbeat, ForceRelease,
                                    Advertise, Workers, AppendLog, Attach, TakeEnding,
                                    DeliveryLog, WebhookSchedule, WebhookClaim, WebhookBegin,
                                    WebhookEnd, Promote, Existing)

__all__ = [
    "ALL", "HERE", "VOCABULARY",
    "Admit", "AdmitReply", "AdmitResult", "Admitted", "AlreadyAdmitted", "AppendLog",
    "Attach", "Attempt", "DeliveryLog", "Existing", "TakeEnding", "WebhookBegin",
    "WebhookClaim", "WebhookEnd", "WebhookSchedule",
    "Advertise", "Beat", "BeatVerdict", "Busy", "Finish", "FinishMode", "FinishReply",
    "Finished", "ForceRelease", "ForceReleased", "Heartbeat", "LogReply", "LuaScript", "Message",
    "Read",
    "ReadFields", "Refused", "RunSnapshot", "Start", "StartReply", "Started", "WorkerInfo",
    "Workers", "prelude", "source", "Joined", "Pending", "Promote", "Upkept", "OnPromoted",
    "OnPendingExpired",
]
