#!/usr/bin/env python3
"""Recall and invented items of the patient-record summaries over C-CDA samples.

Usage: ccda_metrics.py SUMMARIES.jsonl --ccda-dir DIR

SUMMARIES.jsonl: lines {"file": NAME, "items": [...]} (examples/ccda_summaries.rs); DIR holds the
C-CDA files (searched recursively by file name). Python 3 standard library only.

What is counted (parsed independently of the Rust code, with xml.etree; h = urn:hl7-org:v3):
  a section is the h:section whose h:code/@code is the LOINC code
  (Problems 11450-4, Medications 10160-0, Allergies 48765-2); in it, per h:entry:
  - Problems:    .//h:observation/h:templateId[@root='2.16.840.1.113883.10.20.22.4.4']/../h:value/@displayName
  - Medications: .//h:substanceAdministration/h:consumable/h:manufacturedProduct/
                   h:manufacturedMaterial/h:code/@displayName
  - Allergies:   .//h:observation/h:templateId[@root='2.16.840.1.113883.10.20.22.4.7']/../
                   h:participant/h:participantRole/h:playingEntity/h:code/@displayName
  (entries without that displayName are not counted; names are de-duplicated per file,
  case-insensitively).
Recall: a coded name counts as found when it occurs, case-insensitively, in the `text` or the
`quote` of a found item of the same section.
Invented: a found item (any section) is invented when no coded name of its section occurs in
its text AND its quote does not occur in the record's narrative (the section h:text elements,
whitespace squashed, cells separated as ingest does) nor its text's name part (before " — ")
in the record's coded displayName/originalText strings. Goal 0.
"""
import argparse
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

H = "{urn:hl7-org:v3}"
SECTIONS = {
    "Problems": ("11450-4", ".//{h}observation/{h}templateId[@root='2.16.840.1.113883.10.20.22.4.4']/../{h}value"),
    "Medications": ("10160-0", ".//{h}substanceAdministration/{h}consumable/{h}manufacturedProduct/{h}manufacturedMaterial/{h}code"),
    "Allergies": ("48765-2", ".//{h}observation/{h}templateId[@root='2.16.840.1.113883.10.20.22.4.7']/../{h}participant/{h}participantRole/{h}playingEntity/{h}code"),
}


def squash(text):
    return " ".join(text.split())


def coded_names(root):
    names = {}
    for section_name, (loinc, xpath) in SECTIONS.items():
        found = {}
        for section in root.iter(H + "section"):
            code = section.find(H + "code")
            if code is None or code.get("code") != loinc:
                continue
            for entry in section.findall(H + "entry"):
                for element in entry.findall(xpath.format(h=H)):
                    name = squash(element.get("displayName") or "")
                    if name:
                        found.setdefault(name.lower(), name)
        names[section_name] = list(found.values())
    return names


def narrative(root):
    """All section narratives, cells joined by ' | ', rows and blocks by spaces, squashed."""
    parts = []
    for text in root.iter(H + "text"):
        parts.append(" | ".join(squash("".join(cell.itertext())) for cell in text.iter()
                                if cell.tag in (H + "td", H + "th")))
        parts.append(squash("".join(text.itertext())))
    return " ".join(parts)


def coded_strings(root):
    strings = set()
    for element in root.iter():
        if element.get("displayName"):
            strings.add(squash(element.get("displayName")).lower())
        if element.tag == H + "originalText":
            strings.add(squash("".join(element.itertext())).lower())
    return strings


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("summaries")
    parser.add_argument("--ccda-dir", required=True)
    args = parser.parse_args()
    paths = {}
    for folder, _, files in os.walk(args.ccda_dir):
        for name in files:
            paths.setdefault(name, os.path.join(folder, name))
    totals = {name: [0, 0, 0, 0] for name in SECTIONS}  # coded, recalled, items, invented
    invented_all, items_all, files = 0, 0, 0
    examples = []
    with open(args.summaries) as lines:
        for line in lines:
            record = json.loads(line)
            path = paths.get(record["file"])
            if path is None:
                print(f"missing original: {record['file']}", file=sys.stderr)
                continue
            files += 1
            root = ET.parse(path).getroot()
            names = coded_names(root)
            story = narrative(root).lower()
            story_cells = set(cell.strip() for cell in story.split("|"))
            strings = coded_strings(root)
            found = [item for item in record["items"] if item["status"] == "found"]
            for section_name, coded in names.items():
                mine = [item for item in found if item["section"] == section_name]
                hay = [(item["text"] + " \n " + (item["quote"] or "")).lower() for item in mine]
                recalled = [name for name in coded if any(name.lower() in h for h in hay)]
                totals[section_name][0] += len(coded)
                totals[section_name][1] += len(recalled)
                totals[section_name][2] += len(mine)
                for name in coded:
                    if name not in recalled and len(examples) < 10:
                        examples.append(f"missed {section_name} in {record['file']}: {name}")
            for item in found:
                items_all += 1
                quote = (item["quote"] or "").lower()
                head = item["text"].split(" — ")[0].lower()
                head = re.sub(r"^allergy to ", "", head)
                head = head.split(": ")[0] if item["section"] in ("Results", "Vital Signs") else head
                in_record = quote in story or head in strings or head in story_cells or head in story
                coded = names.get(item["section"], [])
                names_coded = any(name.lower() in item["text"].lower() for name in coded)
                if not (in_record or names_coded):
                    invented_all += 1
                    if item["section"] in totals:
                        totals[item["section"]][3] += 1
                    if len(examples) < 20:
                        examples.append(f"invented? {item['section']} in {record['file']}: {item['text']}")
    print(f"{files} C-CDA summaries\n")
    print("| section | coded entries | recalled | recall | items listed | invented |")
    print("|---|---:|---:|---:|---:|---:|")
    all_coded = all_recalled = 0
    for name, (coded, recalled, items, invented) in totals.items():
        all_coded += coded
        all_recalled += recalled
        recall = f"{recalled / coded:.1%}" if coded else "n/a"
        print(f"| {name} | {coded} | {recalled} | {recall} | {items} | {invented} |")
    recall = f"{all_recalled / all_coded:.1%}" if all_coded else "n/a"
    print(f"| **overall (3 sections)** | {all_coded} | {all_recalled} | {recall} | | |")
    print(f"| **all sections** | | | | {items_all} | {invented_all} |")
    if examples:
        print()
        for example in examples:
            print(f"- {example}")


if __name__ == "__main__":
    main()
