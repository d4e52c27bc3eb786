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

import json
import sys
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
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


def make_instance(study, name, patient_id, syntax, number, large):
    modality = "CR" if large else "CT"
    sop_class = CR_IMAGE_STORAGE if large else CT_IMAGE_STORAGE
    rows = LARGE_ROWS if large else SMALL_ROWS
    study_uid = f"{UID_ROOT}.1.{study}"
    series_uid = f"{study_uid}.{2 if large else 1}"
    sop_uid = f"{series_uid}.{number}"

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = f"{UID_ROOT}.0"

    ds = Dataset()
    ds.file_meta = meta
    ds.is_little_endian = True
    ds.is_implicit_VR = syntax == ImplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = "20241115"
    ds.AccessionNumber = f"SACC{study:04d}"
    ds.Modality = modality
    ds.PatientName = name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = str(study)
    ds.SeriesNumber = 2 if large else 1
    ds.InstanceNumber = number
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = rows
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = make_pixels(rows, study * 100 + number)
    return ds, {
        "file": f"study-{study}/{modality.lower()}-{number:03d}.dcm",
        "sopClassUid": sop_class,
        "sopInstanceUid": sop_uid,
        "studyInstanceUid": study_uid,
        "seriesInstanceUid": series_uid,
        "patientId": patient_id,
        "patientName": name,
        "modality": modality,
        "transferSyntax": str(syntax),
        "pixelBytes": rows * rows * 2,
    }


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: make-datasets.py OUT_DIR", file=sys.stderr)
        return 2
    out_dir = Path(sys.argv[1])
    manifest = []
    for study, name, patient_id, syntax, small, large in STUDIES:
        (out_dir / f"study-{study}").mkdir(parents=True, exist_ok=True)
        specs = [(n, False) for n in range(1, small + 1)]
        specs += [(n, True) for n in range(1, large + 1)]
        for number, is_large in specs:
            ds, entry = make_instance(study, name, patient_id, syntax, number, is_large)
            ds.save_as(out_dir / entry["file"], write_like_original=False)
            manifest.append(entry)
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
