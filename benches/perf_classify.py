#!/usr/bin/env python3
"""Groups a `perf record` profile's self time by component (kernel scheduling, SQLite, HTTP, Parquet, JSON, ...):
    python3 benches/perf_classify.py perf.data
Used for the members-page profile in benches/results/api/results.md (Run 4)."""
import subprocess, sys, re, collections
data = sys.argv[1]
out = subprocess.run(["perf","report","-i",data,"--no-children","--sort","dso,sym","--stdio","-g","none","--percent-limit","0"],capture_output=True,text=True).stdout
cats = collections.OrderedDict()
rules = [
 ("kernel: scheduler / futex / thread hand-offs", r"\[k\].*(finish_task_switch|schedule|futex|try_to_wake|_raw_spin|pick_next|enqueue|dequeue|update_curr|switch|hrtimer|ttwu|select_task|idle|psi_|rcu|native_sched|cpuacct|__x64_sys_futex|eventfd)"),
 ("kernel: loopback TCP / socket I/O", r"\[k\].*(tcp|sock|skb|ip_|__dev|net_|loopback|inet|copy_page|_copy_|iov|writev|recv|send|napi|epoll|ep_|csum|__netif|validate_xmit|fib|nf_|dst_|__alloc_skb|kmalloc_reserve)"),
 ("kernel: file open / read (object_store)", r"\[k\].*(open|path_|link_path|lookup|filemap|vfs_read|pread|dput|fput|__fput|d_alloc|dentry|inode|file|ext4|page_cache|filp|getname|kmem_cache|alloc_empty|terminate_walk|step_into|walk_component|do_sys)"),
 ("kernel: other", r"\[k\]"),
 ("Parquet decode", r"parquet::|ParquetRecordBatch|ParquetObjectReader"),
 ("JSON encoding (arrow_json, write_json_rows)", r"arrow_json|write_json_rows|ryu|itoa"),
 ("SQLite (catalog statements)", r"sqlite3|yy_|rusqlite|resolve[A-Z]|pcache|[bB]tree|[vV]dbe|[wW]alker|Expr|lookupName|[wW]here[A-Z]|[sS]elect[A-Z]|[pP]ager|walIndex|wal[A-Z]|Parse|Token|keyword|sqlite"),
 ("segment definition parse (rule check)", r"segkit::rules|check_rule|segkit::spec|segkit::model"),
 ("serde_json parse (segment definition)", r"serde_json::de|serde_json::read|serde_core::de|Deserializer|Visitor|visit_"),
 ("allocator (malloc/free)", r"malloc|free|_int_|__rdl_|__rust_alloc|__rust_dealloc|realloc|cfree|tcache"),
 ("memcpy/memmove/memset", r"mem(move|cpy|set|cmp)"),
 ("HTTP: hyper / axum / tower / http", r"hyper::|axum|tower|http::|httparse|matchit|utoipa"),
 ("tokio runtime", r"tokio::|std::sys::sync|futex::Mutex|Condvar|std::thread"),
 ("object_store", r"object_store|url::"),
 ("formatting / strings", r"fmt::|String|format"),
 ("auth (sha256, key cache)", r"sha2|Sha256|auth"),
 ("arrow (arrays, batches)", r"arrow"),
]
total = 0.0
for line in out.splitlines():
    m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+(\[.\])\s+(.*)", line)
    if not m: continue
    pct = float(m.group(1)); dso=m.group(2); kind=m.group(3); sym=m.group(4)
    text = f"{kind} {dso} {sym}"
    total += pct
    for name, rx in rules:
        if re.search(rx, text):
            cats[name] = cats.get(name,0)+pct; break
    else:
        cats["other user space ("+dso+")"] = cats.get("other user space ("+dso+")",0)+pct
for k,v in sorted(cats.items(), key=lambda x:-x[1]):
    print(f"{v:6.1f}%  {k}")
print(f"total {total:.1f}%")
