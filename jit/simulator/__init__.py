"""A fake Marqeta: plays a day of card traffic against the running platform and checks it.

`manage.py simulate_marqeta` drives it (see docs/marqeta-setup.md). The pieces:

- `merchants`: where cards are used (MCCs, countries, channels) and what they cost.
- `payloads`: JIT funding requests, webhook transactions and their envelopes, in the shapes of
  MARQETA.md (§2, §4.8, §7, Examples 1-7).
- `model`: what Marqeta believes happened, and what the platform must therefore show.
- `scenario`: the seeded day (authorizations, then the webhooks, in waves).
- `clearing_file`: the day's clearing file (MARQETA.md §12).
- `platform`: how the simulator waits for and reads the platform (hooks tests replace).
- `runner`: the run itself and its report; `core_api`: a fake of Marqeta's Core API.

The simulator is a tool, not part of the gateway: it reads every app's tables to check them.
"""
