//! Typed reading of CSV fields (`ScanRequest::typed`): an ingest that lets the CSV reader parse the fields it
//! maps stores the same rows and quarantines the same rows, with the same reasons and the same record texts, as
//! an ingest of the same file read all as text.

use async_trait::async_trait;
use segkit::deps::arrow::array::{AsArray, RecordBatch};
use segkit::deps::arrow::datatypes::{DataType as ArrowType, SchemaRef};
use segkit::deps::arrow::util::pretty::pretty_format_batches;
use segkit::testing::collect_scan;
use segkit::{Attribute, BatchStream, DataType, Entity, IngestOptions, Link, Result, ScanRequest, Source, Workspace};
use segkit_connectors::{FileFormat, FileSource};

/// A source that reads its inner source without typed fields (the reference: everything as text).
#[derive(Debug)]
struct AllText(Box<dyn Source>);

#[async_trait]
impl Source for AllText {
    fn name(&self) -> String {
        self.0.name()
    }
    async fn schema(&self) -> Result<SchemaRef> {
        self.0.schema().await
    }
    async fn scan(&self, request: &ScanRequest) -> Result<BatchStream> {
        self.0.scan(&request.clone().with_typed(vec![])).await
    }
}

/// `rows` data rows with a bad value, a missing key, a blank or a malformed record now and then, and a quoted
/// field with a line break in it (so chunk cuts meet quotes).
fn csv(rows: usize) -> String {
    let mut t = String::from("id,name,age,score,at,active,tags,ignored\n");
    for i in 0..rows {
        // Bad rows only in the first chunk (4 MiB): the later ones are read typed.
        let line = match if i < 4000 { i % 997 } else { 0 } {
            13 => format!("{i},bad age,notanumber,1.5,2020-01-01 00:00:00Z,true,a|b,x\n"),
            14 => ",no key,30,1.5,2020-01-01 00:00:00Z,true,a,x\n".to_string(),
            15 => format!("{i},too,few\n"),
            16 => format!("{i},\"two\nlines, quoted\",31,NaN,2020-02-29T12:00:00Z,no,\"[\"\"x\"\"]\",y\n"),
            17 => format!("{i},big,2147483648,2,2020-01-01 00:00:00Z,yes,,z\n"),
            18 => format!("{i},blank score, 44 , ,2021-03-04 05:06:07.5,F,NULL,\n"),
            19 => format!("{i},bad time,44,1,yesterday,t,c,\n"),
            20 => format!("{},repeat,44,1,2021-01-01 00:00:00Z,t,c,\n", i - 10),
            _ => format!(
                "{i},\"name {i}\",{},{}.25,2020-08-10 13:{:02}:58.011017Z,{},p|q,{}\n",
                i % 90,
                i % 1000,
                i % 60,
                i % 2 == 0,
                i % 7
            ),
        };
        t.push_str(&line);
    }
    t
}

fn users(indexed: bool) -> Entity {
    let mut e = Entity::profile("users", "id")
        .attribute(Attribute::new("id", DataType::Int64))
        .attribute(Attribute::new("name", DataType::String))
        .attribute(Attribute::new("age", DataType::Int32))
        .attribute(Attribute::new("score", DataType::Float64))
        .attribute(Attribute::new("at", DataType::Timestamp))
        .attribute(Attribute::new("active", DataType::Bool))
        .attribute(Attribute::new("tags", DataType::List(Box::new(DataType::String))));
    if indexed {
        e = e.attribute(Attribute::new("name_copy", DataType::String));
        for a in &mut e.attributes {
            a.indexed = a.name == "active";
        }
    }
    e
}

fn events() -> Entity {
    Entity::event("events", "at")
        .attribute(Attribute::new("id", DataType::Int64))
        .attribute(Attribute::new("name", DataType::String).indexed())
        .attribute(Attribute::new("age", DataType::Int32))
        .attribute(Attribute::new("score", DataType::Float64))
        .attribute(Attribute::new("at", DataType::Timestamp))
        .attribute(Attribute::new("active", DataType::Bool))
        .attribute(Attribute::new("tags", DataType::List(Box::new(DataType::String))))
        .link(Link::new("id", "users"))
}

/// Everything an ingest leaves: the report's counts and sample, the stored rows, the quarantine (without its
/// ingest id).
async fn ingest(dir: &std::path::Path, entity: Entity, source: &dyn Source) -> (String, String, String, u64) {
    let ws = Workspace::open(dir).await.unwrap();
    let name = entity.name.clone();
    if name == "events" {
        ws.define_entity(users(false)).await.unwrap();
    }
    ws.define_entity(entity).await.unwrap();
    let report = ws.ingest(&name, source, IngestOptions::default()).await.unwrap();
    let counts = format!(
        "{} {} {} {:?} {:?}",
        report.rows_read, report.rows_written, report.rows_quarantined, report.quarantine_sample, report.ignored_fields
    );
    let stored = ws.sql(&format!("SELECT * FROM \"{name}\" ORDER BY id, at")).await.unwrap();
    let q = ws.quarantine(&name).await.unwrap();
    let q = q.project(&[1, 2, 3]).unwrap();
    let stored = pretty_format_batches(&stored).unwrap().to_string();
    (counts, stored, pretty_format_batches(&[q]).unwrap().to_string(), report.rows_quarantined)
}

#[tokio::test]
async fn typed_reading_stores_and_quarantines_what_text_reading_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.csv");
    std::fs::write(&path, csv(80_000)).unwrap();
    let open = || FileSource::new(path.to_str().unwrap(), FileFormat::csv()).unwrap().with_batch_size(100);
    for (i, entity) in [users(false), users(true), events()].into_iter().enumerate() {
        let typed = ingest(&dir.path().join(format!("typed{i}")), entity.clone(), &open()).await;
        let text = ingest(&dir.path().join(format!("text{i}")), entity.clone(), &AllText(Box::new(open()))).await;
        assert_eq!(typed.0, text.0, "{}", entity.name);
        assert_eq!(typed.1, text.1, "{}", entity.name);
        assert_eq!(typed.2, text.2, "{}", entity.name);
        // Rows were quarantined (bad values, malformed records; for profiles missing and repeated keys too) and
        // most were stored.
        assert!(typed.3 >= 4 * 4 && typed.1.lines().count() > 79_000, "{}: {}", entity.name, typed.0);
    }
}

/// The reader does deliver typed batches when asked, and text ones for the chunks with a refused value.
#[tokio::test]
async fn csv_batches_are_typed_when_asked_and_text_where_a_value_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.csv");
    std::fs::write(&path, csv(80_000)).unwrap();
    let source = FileSource::new(path.to_str().unwrap(), FileFormat::csv()).unwrap().with_batch_size(100);
    let typed = vec![segkit::ingest::TypedField { name: "age".into(), data_type: DataType::Int32, required: false }];
    let batches: Vec<RecordBatch> = collect_scan(&source, &ScanRequest::all().with_typed(typed)).await.unwrap();
    let kinds: Vec<&ArrowType> = batches.iter().map(|b| b.column(2).data_type()).collect();
    assert!(kinds.contains(&&ArrowType::Int32) && kinds.contains(&&ArrowType::Utf8), "{kinds:?}");
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 80_000);
    // Other fields stay text; the refused values arrive as the text they were.
    assert!(batches.iter().all(|b| b.column(3).data_type() == &ArrowType::Utf8));
    let texts: Vec<String> = batches
        .iter()
        .filter(|b| b.column(2).data_type() == &ArrowType::Utf8)
        .flat_map(|b| b.column(2).as_string::<i32>().iter().flatten().map(str::to_string).collect::<Vec<_>>())
        .collect();
    assert!(texts.iter().any(|t| t == "notanumber") && texts.iter().any(|t| t == "2147483648"), "{}", texts.len());
    let plain = collect_scan(&source, &ScanRequest::all()).await.unwrap();
    assert!(plain.iter().all(|b| b.schema().fields().iter().all(|f| f.data_type() == &ArrowType::Utf8)));
}
