#!/usr/bin/env bash
# The reviewer loop on a running service (docs/examples/reviewer-loop.md): classify, review with
# two reviewers, export, refit without one of them, diff. Runs in a scratch clone under /tmp/loop.
set -euo pipefail
REPO=${REPO:-$(git rev-parse --show-toplevel)}
SB=$REPO/.venv/bin/switchboard
W=/tmp/loop; rm -rf $W; git clone -q "$REPO" $W; cd $W
export SWITCHBOARD_AUDIT_DB=$W/audit.db SWITCHBOARD_KEYS_DB=$W/audit.db
URL=http://127.0.0.1:8765
say() { printf '$ %s\n' "$*"; }
CLIENT=$($SB keys create --tenant dev --role client 2>/dev/null)
PV=$($SB keys create --tenant dev --role reviewer --name pv-1 2>/dev/null)
TRAINEE=$($SB keys create --tenant dev --role reviewer --name trainee-3 2>/dev/null)
AUDITOR=$($SB keys create --tenant dev --role auditor --name auditor-1 2>/dev/null)
$SB serve --host 127.0.0.1 --port 8765 > $W/serve.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do curl -sf $URL/readyz >/dev/null && break; sleep 1; done
i=0
while IFS= read -r msg; do
  i=$((i+1))
  curl -s $URL/classify -H "Authorization: Bearer $CLIENT" -H content-type:application/json \
    -d "$(python3 -c 'import json,sys; print(json.dumps({"message": sys.argv[1]}))' "$msg")" \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["decision_id"], r["category"], "review" if r["requires_human_review"] else "no-review", sep="\t")' \
    | tee -a $W/decided.tsv
done <<'MSGS'
Can lisinopril give you a dry cough? My doctor just put me on it and I want to know what to expect.
Is it normal to feel dizzy on metformin? Asking before I start it next week.
Started the new inhaler on Monday and since then my heart races every time I use it.
What side effects should I watch for with the shingles vaccine?
my mum has had a rash on her arms since the new antibiotic, is that the tablets?
Could you tell me whether ibuprofen can upset the stomach if taken without food?
MSGS
echo "--- pending reviews"
curl -s "$URL/reviews" -H "Authorization: Bearer $PV" | python3 -c 'import json,sys; [print(p["decision_id"], p["category"], p.get("queue",""), sep="\t") for p in json.load(sys.stdin)["pending"]]'
# Each reviewer labels what is pending: pv-1 the first half, trainee-3 the rest (trainee-3 gets one wrong on purpose).
n=0
for id in $(curl -s "$URL/reviews" -H "Authorization: Bearer $PV" | python3 -c 'import json,sys; [print(p["decision_id"]) for p in json.load(sys.stdin)["pending"]]'); do
  n=$((n+1))
  text=$(grep -n "^$id" $W/decided.tsv | cut -d: -f1)
  line=$(sed -n "${text}p" $W/decided.tsv)
  idx=$text
  case $idx in 3|5) truth=safety_compliance ;; *) truth=informational ;; esac
  if [ $((n % 2)) -eq 1 ]; then key=$PV; who=pv-1; else key=$TRAINEE; who=trainee-3; [ "$truth" = informational ] && truth=service_action; fi
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/reviews/$id" -H "Authorization: Bearer $key" -H content-type:application/json -d "{\"category\":\"$truth\"}")
  echo "review $id by $who: $truth -> $code"
done
echo "--- export"
curl -s "$URL/reviews/export" -H "Authorization: Bearer $AUDITOR" > $W/reviews.csv
python3 -c 'import csv; [print(r["reviewer"], r["label"], r["decided"], r["text"][:60], sep=" | ") for r in csv.DictReader(open("'$W'/reviews.csv"))]'
kill $SERVER; wait $SERVER 2>/dev/null || true
echo "--- refit without trainee-3"
$SB eval fit-head --data eval/data/dev.csv --add-data $W/reviews.csv --exclude-reviewer trainee-3 \
  --channels chat,email,voice --out policies/contact-center/head.json --report-dir $W/fit \
  --cache-dir "$REPO/eval/out/hidden-cache" --deadline-s 60 2>&1 | grep -v "^fit-head \[" | tail -25
python3 - <<'PY'
import json; h=json.load(open("policies/contact-center/head.json")); print("fitted_on:", h["fitted_on"]); print("n:", h["n"])
PY
# The fragment's thresholds into policy.yaml (the head block is the file's last; a reviewer would paste it).
"$REPO/.venv/bin/python" - "$W/fit/head.patch.yaml" <<'PY'
import sys, yaml, re
t = yaml.safe_load(open(sys.argv[1]))["head"]["thresholds"]
p = "policies/contact-center/policy.yaml"; s = open(p).read()
head = s.index("\nhead:")
tail = s[head:]
for k, v in t.items():
    tail = re.sub(rf"(\n    {k}: )[0-9.]+", lambda m, v=v: m.group(1) + str(v), tail)
open(p, "w").write(s[:head] + tail)
print("head thresholds:", t)
PY
echo "--- diff against main's head, on the exported messages and dev"
$SB diff --base HEAD --data $W/reviews.csv --data eval/data/dev.csv --cache-dir "$REPO/eval/out/hidden-cache" --out $W/diff.md 2>&1 | tail -5
sed -n 1,60p $W/diff.md
