import json
ev=[{"user_id": i % 5000, "event_type": ["view","cart","buy","signup"][i%4], "ts": "2026-06-29T%02d:%02d:%02dZ" % ((i//3600)%24,(i//60)%60,i%60), "amount": (i%1000)/10.0} for i in range(1000)]
open("body.json","w").write(json.dumps({"entity":"events","events":ev}))
