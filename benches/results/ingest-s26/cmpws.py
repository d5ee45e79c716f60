import pyarrow.parquet as pq, pyarrow as pa, glob, hashlib, sys, os
def summary(ws):
    out=[]
    for f in glob.glob(os.path.join(ws,'**','*.parquet'),recursive=True):
        pf=pq.ParquetFile(f); t=pf.read()
        rel=os.path.relpath(os.path.dirname(f),ws)
        sink=pa.BufferOutputStream()
        with pa.ipc.new_stream(sink,t.schema) as w: w.write_table(t.combine_chunks())
        h=hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()[:16]
        rgs=tuple(pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups))
        out.append((rel,t.num_rows,rgs,h,str(t.schema),pf.metadata.metadata.get(b'segkit.sorted_by')))
    return sorted(out)
a=summary(sys.argv[1]); b=summary(sys.argv[2])
print(len(a),'files',sum(x[1] for x in a),'rows;', len(b),'files',sum(x[1] for x in b),'rows')
print('IDENTICAL' if a==b else 'DIFFERENT')
if a!=b:
    for x,y in zip(a,b):
        if x!=y: print(x,'\n',y)
