"""COVID-19 induced coughs by phone and messenger bot: ``raw/{uuid}.mp3`` + ``metadata.json``."""

import json

from coughclf.datasets.base import Clip, register_dataset
from coughclf.datasets.layout import find_root, flag_text, loader, require_clips
from coughclf.errors import CoughclfError

LAYOUT = ("raw/{uuid}.mp3 and metadata.json (list of objects: filename, covid19, verified, asymptomatic, "
          "source, comment)")


@register_dataset(
    name="covid19_cough",
    task="classification",
    description="Induced coughs recorded by a call centre (8 kHz) and a messenger bot (48 kHz), labelled with a "
                "COVID-19 test result. Label positive/negative, group = recording; metadata source, verified, "
                "asymptomatic. The label is confounded with the source: report results per source too.",
    citation="Covid19-Cough dataset: call-centre and Telegram-bot cough recordings, "
             "https://github.com/covid19-cough/dataset, 2021.",
    licence="CC0 1.0",
    homepage="https://github.com/covid19-cough/dataset",
)
@loader
def list_covid19_cough(data_dir):
    root = find_root(data_dir, "metadata.json", LAYOUT, dataset="covid19_cough")
    try:
        records = json.loads((root / "metadata.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CoughclfError(f"{root / 'metadata.json'} is not valid JSON ({error}); expected {LAYOUT}") from None
    clips = []
    for record in records:
        if "filename" not in record or "covid19" not in record:
            raise CoughclfError(f"{root / 'metadata.json'}: an entry lacks 'filename' or 'covid19': {record}")
        uuid = record["filename"].rsplit(".", 1)[0]
        # Every listed file is kept, broken ones too: prepare reports them in skipped.csv.
        clips.append(Clip(id=uuid, path=root / "raw" / record["filename"],
                          label="positive" if record["covid19"] else "negative", group=uuid,
                          metadata={"source": record.get("source") or "",
                                    "verified": flag_text(record.get("verified")),
                                    "asymptomatic": flag_text(record.get("asymptomatic"))}))
    return require_clips(sorted(clips, key=lambda clip: clip.id), root, LAYOUT, dataset="covid19_cough")
