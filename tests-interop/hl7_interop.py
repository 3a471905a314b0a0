"""Ketaflow's MLLP door against third-party HL7 tools: messages sent with the Python `hl7`
package (its `mllp_send` command and its MLLPClient), acknowledgements parsed by `hl7apy`.

    python3 tests-interop/hl7_interop.py HOST PORT

Expects `ketaflow serve --demo --mllp HOST:PORT`: the demo's monitor DEMO-MON-1 at Chair 1, whose
patient is infusing. Exit status 0 only if every check holds.
"""

import datetime
import subprocess
import sys
import tempfile

import hl7.client
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

HOST, PORT = sys.argv[1], int(sys.argv[2])
failures = []


def check(what, condition, detail=""):
    print(("ok   " if condition else "FAIL ") + what + ("" if condition else f": {detail}"))
    if not condition:
        failures.append(what)


def pcd01(control_id, device="DEMO-MON-1", spo2="97"):
    """A PCD-01 ORU^R01 as a monitor sends it, segments ending in CR."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S+0000")
    return "\r".join([
        f"MSH|^~\\&|PY_MONITOR^{device}^EUI-64||||{now}||ORU^R01^ORU_R01|{control_id}|P|2.6|||NE|AL|||||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO",
        f"OBR|1|||182777000^monitoring of patient^SCT|||{now}",
        f"OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||{device}^EUI-64",
        f"OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.3.1.1|{spo2}|262688^MDC_DIM_PERCENT^MDC|||||R|||{now}",
        f"OBX|3|NM|147842^MDC_ECG_HEART_RATE^MDC|1.2.1.1|74|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||{now}",
    ]) + "\r"


def ack_of(raw):
    """An acknowledgement, parsed by hl7apy (the framing bytes removed)."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    text = raw.strip("\x0b\x1c\r\n")
    return parse_message(text, find_groups=False, validation_level=VALIDATION_LEVEL.TOLERANT)


# 1. mllp_send (the hl7 package's command) with a plain file: AA echoing MSH-10.
with tempfile.NamedTemporaryFile("w", suffix=".hl7", delete=False) as f:
    f.write(pcd01("PY-1").replace("\r", "\n"))
    path = f.name
sent = subprocess.run(["mllp_send", "--loose", "-f", path, "-p", str(PORT), HOST], capture_output=True, check=False)
check("mllp_send exits 0", sent.returncode == 0, sent.stderr.decode())
ack = ack_of(sent.stdout)
check("mllp_send: AA", ack.msa.msa_1.value == "AA", ack.to_er7())
check("mllp_send: MSA-2 is the message's MSH-10", ack.msa.msa_2.value == "PY-1", ack.to_er7())
check("mllp_send: an ACK^R01", ack.msh.msh_9.to_er7() == "ACK^R01^ACK", ack.msh.msh_9.to_er7())

# 2–5 on one connection: AE for an unknown monitor and an implausible value, AR for garbage, and a
# valid message after them read normally.
with hl7.client.MLLPClient(HOST, PORT) as client:
    ack = ack_of(client.send_message(pcd01("PY-2", device="NOT-REGISTERED")))
    check("unknown monitor: AE", ack.msa.msa_1.value == "AE", ack.to_er7())
    check("unknown monitor: ERR-3 207", ack.err.err_3.err_3_1.to_er7() == "207", ack.to_er7())
    check("unknown monitor: ERR-5 UNKNOWN_DEVICE", ack.err.err_5.to_er7().startswith("UNKNOWN_DEVICE"), ack.to_er7())
    check("unknown monitor: ERR-2 names OBX-18", ack.err.err_2.to_er7() == "OBX^1^18", ack.err.err_2.to_er7())

    ack = ack_of(client.send_message(pcd01("PY-3", spo2="140")))
    check("SpO2 140: AE", ack.msa.msa_1.value == "AE", ack.to_er7())
    check("SpO2 140: ERR-2 OBX^2^5", ack.err.err_2.to_er7() == "OBX^2^5", ack.err.err_2.to_er7())
    check("SpO2 140: ERR-8 gives the allowed range", "allowed: 50" in ack.err.err_8.value, ack.err.err_8.value)

    ack = ack_of(client.send_message(b"\x0bthis is not HL7\x1c\r"))
    check("garbage: AR", ack.msa.msa_1.value == "AR", ack.to_er7())

    ack = ack_of(client.send_message(pcd01("PY-4", spo2="96")))
    check("a valid message after the bad ones, same connection: AA", ack.msa.msa_1.value == "AA", ack.to_er7())
    check("... echoing its MSH-10", ack.msa.msa_2.value == "PY-4", ack.to_er7())

    # The same message again: acknowledged again (stored once: checked by the Rust tests).
    ack = ack_of(client.send_message(pcd01("PY-4", spo2="96")))
    check("a resend: AA", ack.msa.msa_1.value == "AA", ack.to_er7())

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
