"""prefect-dunning's message templates, installed as package data.

Nothing to import here: `dunning.render.templates_dir()` finds this folder through
importlib.resources, so a wheel install renders exactly what the source tree renders.

- `email/_layout.html`, `email/_layout.txt`: the one shell of every email; the words of each
  language in `email/<lang>/strings.yaml`; each message's own text in
  `email/<lang>/<template>.{subject.txt,txt,html}`.
- `report/report.{html,txt,subject.txt}`: the portfolio report email, in the words of
  `report/<lang>/strings.yaml`.
- `whatsapp/<stage>.yaml`: which approved WhatsApp template each stage uses.
- `sms/<lang>/<stage>.txt`: each stage's SMS (kept within 2 segments, see docs/sms_voice.md).
- `voice/<lang>.yaml`: the words of an automated reminder call.
- `desk/`: the collections desk's pages.
"""
