#!/usr/bin/python3
"""Write the synthetic DICOM studies for the bundled sample capture (samples/vendor-night.pcap).

Usage: make-datasets.py OUT_DIR

Five studies of invented patients.  Studies 1 to 4 each hold 30 small CT slices (128 x 128) and
one large CR image (2500 x 2500, 12.5 MB); the vendor pulls them at night, so together they
cross the default policy's 50 MB per hour threshold and its 100 instances per hour rule.
Study 5 holds 6 small slices that the PACS sends to the off-site archive, well under both.
Every name, ID and UID is invented; pixel data is a deterministic pattern, so reruns give the
same files.  Writes OUT_DIR/study-N/*.dcm and OUT_DIR/manifest.json.
Needs pydicom 2.3 (Debian's python3-pydicom); run it with /usr/bin/python3.
"""

import sys
from collections.abc import Iterator
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import dicom_datasets  # noqa: E402
from dicom_datasets import CR_IMAGE_STORAGE, CT_IMAGE_STORAGE, Instance  # noqa: E402

UID_ROOT = "1.2.826.0.1.3680043.10.998"  # invented root used only for the sample capture

SMALL_ROWS = 128
LARGE_ROWS = 2500
SMALL_PER_STUDY = 30

# (study number, patient name, patient id, transfer syntax, small slices, large images)
STUDIES = [
    (1, "SAMPLE^ANNA", "SAMPLE1001", ImplicitVRLittleEndian, SMALL_PER_STUDY, 1),
    (2, "SAMPLE^BERT", "SAMPLE1002", ExplicitVRLittleEndian, SMALL_PER_STUDY, 1),
    (3, "SAMPLE^CLARA", "SAMPLE1003", ImplicitVRLittleEndian, SMALL_PER_STUDY, 1),
    (4, "SAMPLE^DAVID", "SAMPLE1004", ExplicitVRLittleEndian, SMALL_PER_STUDY, 1),
    (5, "SAMPLE^EMMA", "SAMPLE1005", ExplicitVRLittleEndian, 6, 0),
]

# Every manifest key but accessionNumber, as samples/vendor-night.json lists them.
MANIFEST_KEYS = tuple(key for key in dicom_datasets.MANIFEST_KEYS if key != "accessionNumber")


def make_pixels(rows: int, seed: int) -> bytes:
    """Return rows x rows 16-bit little-endian samples: one gradient row, shifted per row."""
    row = bytearray(rows * 2)
    for x in range(rows):
        value = (x * 7 + seed * 101) & 0x0FFF
        row[2 * x] = value & 0xFF
        row[2 * x + 1] = value >> 8
    doubled = bytes(row) * 2
    # Rotating the row by 2 bytes per line keeps the image from repeating every row.
    return b"".join(doubled[(y % rows) * 2 : (y % rows) * 2 + rows * 2] for y in range(rows))


def make_instances() -> Iterator[Instance]:
    """Yield the small CT slices, then the large CR images, of each study in turn."""
    for study, name, patient_id, syntax, small, large in STUDIES:
        specs = [(n, False) for n in range(1, small + 1)]
        specs += [(n, True) for n in range(1, large + 1)]
        for number, is_large in specs:
            modality = "CR" if is_large else "CT"
            rows = LARGE_ROWS if is_large else SMALL_ROWS
            yield Instance(
                file=f"study-{study}/{modality.lower()}-{number:03d}.dcm",
                uid_root=UID_ROOT,
                sop_class_uid=CR_IMAGE_STORAGE if is_large else CT_IMAGE_STORAGE,
                study=study,
                series=2 if is_large else 1,
                number=number,
                patient_name=name,
                patient_id=patient_id,
                modality=modality,
                study_date="20241115",
                accession_number=f"SACC{study:04d}",
                rows=rows,
                transfer_syntax=syntax,
                pixel_data=make_pixels(rows, study * 100 + number),
            )


if __name__ == "__main__":
    sys.exit(dicom_datasets.main(make_instances, MANIFEST_KEYS))
