"""The README documents every configuration key, with the default the binary
uses (the table is `loadease agent --config-doc`, pasted)."""
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_readme_documents_every_agent_key():
    doc = subprocess.run([os.environ["LOADEASE_BIN"], "agent", "--config-doc"],
                         capture_output=True, text=True, check=True).stdout
    rows = [l for l in doc.splitlines() if l.startswith("| `")]
    assert len(rows) > 20, doc
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    missing = [r for r in rows if r not in readme]
    assert not missing, "README.md lacks (or has another default for):\n" + "\n".join(missing)
    listed = re.findall(r"^\| `([a-z_]+\.[a-z_]+)`", readme, re.M)
    twice = sorted({k for k in listed if listed.count(k) > 1})
    assert not twice, f"README.md lists these keys more than once: {twice}"
    # and every key named in the table exists in the binary
    keys_doc = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)`", doc, re.M))
    keys_readme = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)`", readme, re.M))
    assert keys_readme <= keys_doc, keys_readme - keys_doc


def test_controller_doc_documents_every_controller_key():
    doc = subprocess.run([os.environ["LOADEASE_BIN"], "controller", "--config-doc"],
                         capture_output=True, text=True, check=True).stdout
    rows = [l for l in doc.splitlines() if l.startswith("| `")]
    assert len(rows) > 30, doc
    with open(os.path.join(ROOT, "docs", "controller.md")) as f:
        text = f.read()
    missing = [r for r in rows if r not in text]
    assert not missing, "docs/controller.md lacks (or has another default for):\n" + \
        "\n".join(missing)
    # each key once (a pasted table once held balance.sample_s twice)
    listed = re.findall(r"^\| `([a-z_]+\.[a-z_]+)`", text, re.M)
    twice = sorted({k for k in listed if listed.count(k) > 1})
    assert not twice, f"docs/controller.md lists these keys more than once: {twice}"
    keys_doc = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)`", doc, re.M))
    keys_text = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)`", text, re.M))
    assert keys_text <= keys_doc, keys_text - keys_doc
