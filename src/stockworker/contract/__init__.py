"""The published contract: what goes on the wire and into schemas/. Imports nothing else
from stockworker.

commands.py (input models), fields.py (their field constraints), money.py (money in and
out), events.py (output models), codes.py (the published code enums).
"""
