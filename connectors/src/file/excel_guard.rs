//! Size checks on `.xls` and `.ods` workbooks **before** calamine opens them.
//!
//! calamine parses every sheet of an `.xls` or `.ods` workbook when it opens it, each into a dense grid spanning
//! its used area, so a tiny crafted file (one cell at A1 and one at IV65536 on each of 100 sheets, a `DIMENSIONS`
//! record claiming 4 billion rows, an ODS row repeated a million times) could make it allocate gigabytes. These
//! checks walk the file's records (BIFF records in the CFB `Workbook` stream; the XML of `content.xml`) without
//! building anything and add up the cells calamine would allocate, refusing the file above
//! [`MAX_SPREADSHEET_CELLS`] with an error naming the limit.

use std::io::{Cursor, Read};

use segkit::limits::{MAX_SPREADSHEET_CELLS, MAX_SPREADSHEET_SHEETS, MAX_SPREADSHEET_XML_BYTES};

/// Checks `data` if it is an `.xls` (CFB) or `.ods` (a zip with `content.xml`) workbook; other formats pass.
pub(crate) fn check(data: &[u8], short: &str) -> Result<(), String> {
    if data.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        return xls(data, short);
    }
    if data.starts_with(b"PK\x03\x04") {
        return ods(data, short);
    }
    Ok(())
}

fn too_many(short: &str, cells: u64) -> String {
    format!(
        "{short}: its sheets span at least {cells} cells, more than the {MAX_SPREADSHEET_CELLS} a workbook may cover \
         (limit MAX_SPREADSHEET_CELLS; the .xls/.ods reader holds every sheet's used area in memory)"
    )
}

/// Rows × columns of the box around `cells` positions (0 when empty).
#[derive(Default)]
struct Extent {
    r0: u32,
    r1: u32,
    c0: u32,
    c1: u32,
    any: bool,
}

impl Extent {
    fn add(&mut self, r: u32, c: u32) {
        if !self.any {
            (self.r0, self.r1, self.c0, self.c1, self.any) = (r, r, c, c, true);
        } else {
            (self.r0, self.r1) = (self.r0.min(r), self.r1.max(r));
            (self.c0, self.c1) = (self.c0.min(c), self.c1.max(c));
        }
    }
    fn cells(&self) -> u64 {
        if !self.any {
            return 0;
        }
        u64::from(self.r1 - self.r0 + 1) * u64::from(self.c1 - self.c0 + 1)
    }
}

fn u16_at(d: &[u8], i: usize) -> Option<u32> {
    d.get(i..i + 2).map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])))
}

fn u32_at(d: &[u8], i: usize) -> Option<u32> {
    d.get(i..i + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// BIFF records of `stream` from `pos`: (type, data).
fn records(stream: &[u8], mut pos: usize) -> impl Iterator<Item = Result<(u16, &[u8]), String>> {
    std::iter::from_fn(move || {
        if pos >= stream.len() {
            return None;
        }
        let (Some(t), Some(len)) = (u16_at(stream, pos), u16_at(stream, pos + 2)) else {
            pos = stream.len();
            return Some(Err("a BIFF record is cut off".to_string()));
        };
        let start = pos + 4;
        let end = start + len as usize;
        if end > stream.len() {
            pos = stream.len();
            return Some(Err("a BIFF record runs past the end of the workbook stream".to_string()));
        }
        pos = end;
        Some(Ok((t as u16, &stream[start..end])))
    })
}

fn xls(data: &[u8], short: &str) -> Result<(), String> {
    let bad = |why: String| format!("{short} is not a readable .xls workbook: {why}");
    let mut cfb = cfb::CompoundFile::open(Cursor::new(data)).map_err(|e| bad(e.to_string()))?;
    let mut stream = Vec::new();
    let opened = cfb.open_stream("/Workbook").or_else(|_| cfb.open_stream("/Book"));
    let reader = opened.map_err(|e| bad(format!("no Workbook stream ({e})")))?;
    // The stream's sectors are in the file, so it cannot be longer than the file.
    reader.take(data.len() as u64 + 1).read_to_end(&mut stream).map_err(|e| bad(e.to_string()))?;
    // Globals: the sheets' positions (BoundSheet8), up to the first EOF.
    let mut sheets = vec![];
    for r in records(&stream, 0) {
        let (t, d) = r.map_err(bad)?;
        match t {
            0x0085 => {
                let pos = u32_at(d, 0).ok_or_else(|| bad("a sheet record is too short".into()))? as usize;
                if pos >= stream.len() {
                    return Err(bad(format!("a sheet starts at byte {pos}, past the end of the workbook stream")));
                }
                sheets.push(pos);
                if sheets.len() > MAX_SPREADSHEET_SHEETS {
                    return Err(format!(
                        "{short} has more than {MAX_SPREADSHEET_SHEETS} sheets (limit MAX_SPREADSHEET_SHEETS)"
                    ));
                }
            }
            0x000A => break,
            _ => {}
        }
    }
    let mut total: u64 = 0;
    for pos in sheets {
        // As calamine reads a sheet: from its BOF to its EOF, skipping nested substreams (charts).
        let (mut cells, mut formulas, mut reserved) = (Extent::default(), Extent::default(), 0u64);
        let (mut seen_bof, mut depth) = (false, 0usize);
        for r in records(&stream, pos) {
            let (t, d) = r.map_err(bad)?;
            if depth > 0 {
                match t {
                    0x0809 => depth += 1,
                    0x000A => depth -= 1,
                    _ => {}
                }
                continue;
            }
            let at = |d: &[u8]| Some((u16_at(d, 0)?, u16_at(d, 2)?));
            match t {
                0x0809 if seen_bof => depth += 1,
                0x0809 => seen_bof = true,
                0x000A => break,
                // DIMENSIONS: calamine reserves rows × columns cells for it.
                0x0200 => {
                    let (rf, rl, cf, cl) = match d.len() {
                        10 => (u16_at(d, 0), u16_at(d, 2), u16_at(d, 4), u16_at(d, 6)),
                        14 | 16 => (u32_at(d, 0), u32_at(d, 4), u16_at(d, 8), u16_at(d, 10)),
                        n => return Err(bad(format!("a DIMENSIONS record of {n} bytes"))),
                    };
                    let (rf, rl, cf, cl) = (rf.unwrap_or(0), rl.unwrap_or(0), cf.unwrap_or(0), cl.unwrap_or(0));
                    let cf = if cf > 0xFF || cl < cf { 0 } else { cf };
                    if rl >= 1 && cl >= 1 {
                        if rl - 1 < rf {
                            return Err(bad(format!("a DIMENSIONS record with rows {rf}..{rl}")));
                        }
                        reserved = u64::from(rl - rf) * u64::from(cl - cf);
                    }
                }
                // Number, Label, RString, BoolErr, Rk, LabelSst: one cell each.
                0x0203 | 0x0204 | 0x00D6 | 0x0205 | 0x027E | 0x00FD => {
                    if let Some((r, c)) = at(d) {
                        cells.add(r, c);
                    }
                }
                // Formula: a value cell and a formula cell.
                0x0006 => {
                    if let Some((r, c)) = at(d) {
                        cells.add(r, c);
                        formulas.add(r, c);
                    }
                }
                // MulRk: a row of cells from the first to the last column.
                0x00BD => {
                    if let (Some((r, c)), Some(last)) = (at(d), d.len().checked_sub(2).and_then(|i| u16_at(d, i))) {
                        cells.add(r, c);
                        cells.add(r, last.max(c));
                    }
                }
                _ => {}
            }
        }
        total = total.saturating_add(reserved).saturating_add(cells.cells()).saturating_add(formulas.cells());
        if total > MAX_SPREADSHEET_CELLS as u64 {
            return Err(too_many(short, total));
        }
    }
    Ok(())
}

/// One `table:table` of `content.xml`: the rows with data and the widest of them.
#[derive(Default)]
struct OdsTable {
    row: u64,
    first_data_row: Option<u64>,
    end_data_row: u64,
    width: u64,
}

fn ods(data: &[u8], short: &str) -> Result<(), String> {
    use quick_xml::events::{BytesStart, Event};
    let Ok(mut zip) = zip::ZipArchive::new(Cursor::new(data)) else { return Ok(()) };
    let is_ods = match zip.by_name("mimetype") {
        Ok(mut f) => {
            let mut m = String::new();
            let _ = f.by_ref().take(256).read_to_string(&mut m);
            m.trim() == "application/vnd.oasis.opendocument.spreadsheet"
        }
        Err(_) => false,
    };
    if !is_ods {
        return Ok(()); // .xlsx / .xlsm / .xlsb: their cells are checked while streamed.
    }
    let bad = |why: String| format!("{short} is not a readable .ods workbook: {why}");
    let content = zip.by_name("content.xml").map_err(|e| bad(format!("no content.xml ({e})")))?;
    let mut xml = quick_xml::Reader::from_reader(std::io::BufReader::new(content.take(MAX_SPREADSHEET_XML_BYTES)));
    let mut buf = Vec::new();
    let repeat = |e: &BytesStart, name: &str| -> u64 {
        e.attributes()
            .flatten()
            .find(|a| a.key.as_ref() == name)
            .and_then(|a| a.value.parse::<u64>().ok())
            .unwrap_or(1)
            .max(1)
    };
    let has_value = |e: &BytesStart| e.attributes().flatten().any(|a| a.key.as_ref() == "office:value-type");
    let (mut total, mut read) = (0u64, 0u64);
    let mut table: Option<OdsTable> = None;
    // Within a row: its repeat count, the next column, and the end of its last non-empty cell.
    let (mut row_repeat, mut col, mut row_end) = (1u64, 0u64, 0u64);
    let mut sheets = 0usize;
    loop {
        buf.clear();
        let event = match xml.read_event_into(&mut buf) {
            Ok(event) => event,
            Err(_) if xml.buffer_position() + 1 >= MAX_SPREADSHEET_XML_BYTES => break,
            Err(e) => return Err(bad(e.to_string())),
        };
        read = xml.buffer_position();
        let (start, empty) = match &event {
            Event::Start(e) => (Some(e.clone()), false),
            Event::Empty(e) => (Some(e.clone()), true),
            _ => (None, false),
        };
        if let Some(e) = start {
            match e.name().as_ref() {
                "table:table" => {
                    sheets += 1;
                    if sheets > MAX_SPREADSHEET_SHEETS {
                        return Err(format!(
                            "{short} has more than {MAX_SPREADSHEET_SHEETS} sheets (limit MAX_SPREADSHEET_SHEETS)"
                        ));
                    }
                    table = Some(OdsTable::default());
                }
                "table:table-row" => {
                    (row_repeat, col, row_end) = (repeat(&e, "table:number-rows-repeated"), 0, 0);
                    if empty {
                        if let Some(t) = &mut table {
                            t.row = t.row.saturating_add(row_repeat);
                        }
                    }
                }
                "table:table-cell" | "table:covered-table-cell" => {
                    let n = repeat(&e, "table:number-columns-repeated");
                    col = col.saturating_add(n);
                    if !empty || has_value(&e) {
                        row_end = col;
                    }
                }
                _ => {}
            }
        }
        match &event {
            Event::End(e) if e.name().as_ref() == "table:table-row" => {
                if let Some(t) = &mut table {
                    if row_end > 0 {
                        t.first_data_row.get_or_insert(t.row);
                        t.end_data_row = t.row.saturating_add(row_repeat);
                        t.width = t.width.max(row_end);
                    }
                    t.row = t.row.saturating_add(row_repeat);
                }
            }
            Event::End(e) if e.name().as_ref() == "table:table" => {
                if let Some(t) = table.take() {
                    let rows = t.first_data_row.map_or(0, |f| t.end_data_row - f);
                    total = total.saturating_add(rows.saturating_mul(t.width));
                    if total > MAX_SPREADSHEET_CELLS as u64 {
                        return Err(too_many(short, total));
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if read + 1 >= MAX_SPREADSHEET_XML_BYTES {
        return Err(format!(
            "{short}: its content.xml is larger than {MAX_SPREADSHEET_XML_BYTES} bytes uncompressed (limit \
             MAX_SPREADSHEET_XML_BYTES)"
        ));
    }
    Ok(())
}
