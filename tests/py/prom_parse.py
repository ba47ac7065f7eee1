"""Parse a Prometheus text page with prometheus_client's own parser.

Used by tests/metrics.rs: the parser is one we did not write, so a page it
reads is one Prometheus reads.

    python3 prom_parse.py < page.txt

Prints one JSON object on stdout:
    {"families": {"sshpipe_sessions": "counter", ...},
     "samples": [{"name": "sshpipe_sessions_total", "labels": {...},
                  "value": 3.0}, ...]}
A page the parser rejects makes it exit 1 with the parser's error on stderr.
"""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    families = {}
    samples = []
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        for s in family.samples:
            samples.append({"name": s.name, "labels": s.labels, "value": s.value})
    json.dump({"families": families, "samples": samples}, sys.stdout)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the parser's ValueError and friends
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
