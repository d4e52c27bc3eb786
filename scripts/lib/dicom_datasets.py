"""Build and write the synthetic DICOM files that the capture-recording scripts send.

Each entry point (scripts/fixtures/dicom/make-datasets.py, scripts/sample/make-datasets.py)
describes its instances and pixel pattern and calls main() here.  Every name, ID and UID is
invented, and the pixel data is deterministic, so the files are the same on every run.
Needs pydicom 2.3 (Debian's python3-pydicom); run it with /usr/bin/python3.
"""

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ImplicitVRLittleEndian

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"

# Every key a manifest entry can have, in the order the manifests list them.
MANIFEST_KEYS = (
    "file",
    "sopClassUid",
    "sopInstanceUid",
    "studyInstanceUid",
    "seriesInstanceUid",
    "patientId",
    "patientName",
    "modality",
    "accessionNumber",
    "transferSyntax",
    "pixelBytes",
)


@dataclass(frozen=True)
class Instance:
    """One square 16-bit MONOCHROME2 image of an invented patient.

    The UIDs are derived from uid_root: study UID ROOT.1.STUDY, series UID STUDY_UID.SERIES,
    SOP instance UID SERIES_UID.NUMBER.
    """

    file: str  # path of the .dcm file, relative to the output folder
    uid_root: str
    sop_class_uid: str
    study: int
    series: int
    number: int
    patient_name: str
    patient_id: str
    modality: str
    study_date: str
    accession_number: str
    rows: int  # also the number of columns
    transfer_syntax: str
    pixel_data: bytes  # rows x rows little-endian 16-bit samples

    @property
    def study_uid(self) -> str:
        return f"{self.uid_root}.1.{self.study}"

    @property
    def series_uid(self) -> str:
        return f"{self.study_uid}.{self.series}"

    @property
    def sop_uid(self) -> str:
        return f"{self.series_uid}.{self.number}"


def make_dataset(instance: Instance) -> Dataset:
    """Build the pydicom dataset, with its file meta information, for one instance."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = instance.sop_class_uid
    meta.MediaStorageSOPInstanceUID = instance.sop_uid
    meta.TransferSyntaxUID = instance.transfer_syntax
    meta.ImplementationClassUID = f"{instance.uid_root}.0"

    ds = Dataset()
    ds.file_meta = meta
    ds.is_little_endian = True
    ds.is_implicit_VR = instance.transfer_syntax == ImplicitVRLittleEndian
    ds.SOPClassUID = instance.sop_class_uid
    ds.SOPInstanceUID = instance.sop_uid
    ds.StudyDate = instance.study_date
    ds.AccessionNumber = instance.accession_number
    ds.Modality = instance.modality
    ds.PatientName = instance.patient_name
    ds.PatientID = instance.patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = instance.study_uid
    ds.SeriesInstanceUID = instance.series_uid
    ds.StudyID = str(instance.study)
    ds.SeriesNumber = instance.series
    ds.InstanceNumber = instance.number
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = instance.rows
    ds.Columns = instance.rows
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = instance.pixel_data
    return ds


def manifest_entry(instance: Instance, keys: Iterable[str]) -> dict[str, object]:
    """Describe one instance for the tests, with the given MANIFEST_KEYS in the given order."""
    values: dict[str, object] = {
        "file": instance.file,
        "sopClassUid": instance.sop_class_uid,
        "sopInstanceUid": instance.sop_uid,
        "studyInstanceUid": instance.study_uid,
        "seriesInstanceUid": instance.series_uid,
        "patientId": instance.patient_id,
        "patientName": instance.patient_name,
        "modality": instance.modality,
        "accessionNumber": instance.accession_number,
        "transferSyntax": str(instance.transfer_syntax),
        "pixelBytes": len(instance.pixel_data),
    }
    return {key: values[key] for key in keys}


def write_datasets(out_dir: Path, instances: Iterable[Instance], keys: Iterable[str]) -> None:
    """Write each instance to OUT_DIR/instance.file and list them all in OUT_DIR/manifest.json.

    instances may be a generator, so only one image's pixel data is in memory at a time.
    """
    keys = tuple(keys)
    manifest = []
    for instance in instances:
        path = out_dir / instance.file
        path.parent.mkdir(parents=True, exist_ok=True)
        make_dataset(instance).save_as(path, write_like_original=False)
        manifest.append(manifest_entry(instance, keys))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def main(instances: Callable[[], Iterable[Instance]], keys: Iterable[str]) -> int:
    """Run a make-datasets.py entry point: usage make-datasets.py OUT_DIR."""
    if len(sys.argv) != 2:
        print("usage: make-datasets.py OUT_DIR", file=sys.stderr)
        return 2
    write_datasets(Path(sys.argv[1]), instances(), keys)
    return 0
