"""The six call flows of the Twilio reference (section 7), as recorded, signed
callback sequences with what each user sees after every step."""

from tests.flows import (
    a_inbound_to_agent,
    b_queue,
    c_missed,
    d_conference_hold,
    e_warm_transfer,
    f_outbound_busy,
)
from tests.flows.model import Flow

FLOWS: dict[str, Flow] = {
    flow.name: flow
    for flow in (
        a_inbound_to_agent.FLOW, b_queue.FLOW, b_queue.ABANDONED, c_missed.NO_ANSWER, c_missed.ABANDONED,
        d_conference_hold.FLOW, e_warm_transfer.FLOW, f_outbound_busy.BUSY, f_outbound_busy.FAILED,
    )
}
