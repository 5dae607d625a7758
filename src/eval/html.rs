//! `report.html`: a static page beside `report.md` (no server, no external assets: inline
//! CSS and JS, pictures and plots by relative path). It shows the plots, the results table,
//! the comparison sheets and a viewer: pick an image, a rate and a codec, then flip between
//! the original and the decoded picture (button or key `f`) or slide a divider across them.
//!
//! For headless checks (eval/check_html.sh) the script records on `<body>`:
//! `data-ready="1"` when it ran to the end, `data-rows` (table rows), `data-viewer-images`
//! (viewer choices), `data-loaded` (pictures loaded so far) and, on any script error,
//! `data-error` plus a visible `#js-error` element.
use super::pictures::{decoded_path, original_path, png_name};
use super::report::{Entry, Summary, f as opt, kid_pm as kid};
use super::{Row, fmt_bpp};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// A relative URL from path segments (each percent-encoded where needed).
fn url(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| {
            p.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'@' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1400px;\
padding:0 1em;color:#222}table{border-collapse:collapse;font-size:14px}td,th{border:1px solid \
#ccc;padding:3px 7px;text-align:right}td:first-child,th:first-child{text-align:left}\
tr.miss td{color:#a00}.plots img{width:48%;min-width:420px;margin:4px;border:1px solid #eee}\
.plots img.wide{width:97%}\
.sheet img{max-width:100%;border:1px solid #ddd}#viewer{border:1px solid #ccc;padding:10px;\
background:#fafafa}#stage{position:relative;display:inline-block;line-height:0;\
margin-top:8px;image-rendering:pixelated}#stage img{display:block}#stage #dec{position:absolute;\
left:0;top:0}#stage.flip-orig #dec{visibility:hidden}#stage.slide #dec{clip-path:inset(0 0 0 \
var(--cut,50%))}#divider{position:absolute;top:0;bottom:0;width:2px;background:#f33;\
left:var(--cut,50%);display:none}#stage.slide #divider{display:block}#js-error{color:#fff;\
background:#c00;padding:8px}label{margin-right:1em}#caption{font-size:14px;margin-top:6px}";

const JS: &str = r#"
window.onerror = function (msg, src, line) {
  document.body.setAttribute('data-error', String(msg));
  var d = document.createElement('div');
  d.id = 'js-error';
  d.textContent = 'script error: ' + msg + ' (line ' + line + ')';
  document.body.insertBefore(d, document.body.firstChild);
};
(function () {
  var D = JSON.parse(document.getElementById('viewer-data').textContent);
  var $ = function (id) { return document.getElementById(id); };
  var body = document.body, loaded = 0;
  function fill(sel, values, label) {
    sel.innerHTML = '';
    values.forEach(function (v) {
      var o = document.createElement('option');
      o.value = v; o.textContent = label ? label(v) : v; sel.appendChild(o);
    });
  }
  fill($('pick-image'), D.images);
  fill($('pick-rate'), D.targets, function (t) { return t + ' bpp'; });
  fill($('pick-codec'), D.codecs);
  fill($('pick-zoom'), [1, 2, 3, 4], function (z) { return z + '×'; });
  var orig = $('orig'), dec = $('dec'), stage = $('stage');
  [orig, dec].forEach(function (im) {
    im.addEventListener('load', function () {
      loaded += 1; body.setAttribute('data-loaded', String(loaded));
    });
  });
  function show() {
    var im = $('pick-image').value, t = $('pick-rate').value, c = $('pick-codec').value;
    var r = D.rows[im + '|' + c + '|' + t];
    var z = Number($('pick-zoom').value);
    orig.onload = function () {
      [orig, dec].forEach(function (i) { i.style.width = (orig.naturalWidth * z) + 'px'; });
    };
    if (orig.naturalWidth) orig.onload();
    orig.src = D.originals[im] || '';
    dec.src = r && r.src ? r.src : '';
    $('caption').textContent = r
      ? c + ' @ ' + t + ' bpp target: ' + r.bpp.toFixed(4) + ' bpp, ' + r.psnr.toFixed(2) +
        ' dB' + (r.src ? '' : ' (no picture kept)')
      : c + ' has no row for ' + im + ' @ ' + t + ' bpp';
  }
  ['pick-image', 'pick-rate', 'pick-codec', 'pick-zoom'].forEach(function (id) {
    $(id).addEventListener('change', show);
  });
  function mode(m) {
    stage.className = m === 'slide' ? 'slide' : '';
    $('slider').disabled = m !== 'slide';
    $('flip').disabled = m !== 'flip';
  }
  document.querySelectorAll('input[name=mode]').forEach(function (r) {
    r.addEventListener('change', function () { mode(r.value); });
  });
  function flip() {
    if (stage.classList.contains('slide')) return;
    stage.classList.toggle('flip-orig');
    $('flip').textContent = stage.classList.contains('flip-orig')
      ? 'showing original (flip)' : 'showing decoded (flip)';
  }
  $('flip').addEventListener('click', flip);
  document.addEventListener('keydown', function (e) { if (e.key === 'f') flip(); });
  $('slider').addEventListener('input', function () {
    stage.style.setProperty('--cut', this.value + '%');
  });
  mode('flip');
  show();
  body.setAttribute('data-rows', String(document.querySelectorAll('#results tbody tr').length));
  body.setAttribute('data-viewer-images', String(D.images.length));
  body.setAttribute('data-ready', '1');
})();
"#;

/// The page's HTML.
pub fn page(out: &Path, s: &Summary, rows: &[Row], plots: &[&str], sheets: &[String]) -> String {
    let mut h = String::new();
    let p = &s.protocol;
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Realism–distortion evaluation</title><style>{CSS}</style></head><body>\n\
         <h1>Realism–distortion evaluation</h1>\n<p>{} images; rates are real file sizes. \
         Features <code>{}</code>, {}×{} patches. Paired FID/KID: decoded patches vs the same \
         images' originals. Split (unpaired): {}. KID ×10³ ± std over 100 seeded half-size \
         subsets. The markdown version: <a href=\"report.md\">report.md</a>.</p>\n",
        p.images.len(),
        esc(&p.features),
        p.patch,
        p.patch,
        esc(&s.realism.split_protocol)
    );
    let floor = |st: &Option<super::realism::Stat>| match st {
        Some(st) => format!(
            "FID {}, KID ×10³ {} ({} vs {} patches)",
            opt(st.fid, 2),
            kid(Some(st.kid), Some(st.kid_std)),
            st.n_patches,
            st.n_ref_patches
        ),
        None => "– (too few patches)".into(),
    };
    let _ = writeln!(
        h,
        "<p>Split floor (the originals themselves, even vs odd images: what a codec returning \
         its input scores): {}.</p>",
        floor(&s.realism.split_floor)
    );
    if let Some(src) = &s.realism.reference {
        let _ = writeln!(
            h,
            "<p>Reference folder (columns <i>ref</i>): <code>{}</code>, {} images; floor (all \
             originals vs the folder): {}.</p>",
            esc(&src.dir),
            src.images.len(),
            floor(&s.realism.reference_floor)
        );
    }
    table(&mut h, s, rows);

    // Viewer.
    let mut images: Vec<&str> = rows.iter().map(|r| r.image.as_str()).collect();
    images.sort();
    images.dedup();
    let mut codecs: Vec<&str> = rows.iter().map(|r| r.codec.as_str()).collect();
    codecs.sort();
    codecs.dedup();
    let mut targets: Vec<f64> = rows.iter().map(|r| r.target_bpp).collect();
    targets.sort_by(f64::total_cmp);
    targets.dedup();
    let mut originals = serde_json::Map::new();
    for im in &images {
        if original_path(out, im).exists() {
            originals.insert(
                im.to_string(),
                url(&["images", "original", &png_name(im)]).into(),
            );
        }
    }
    let mut vrows = BTreeMap::new();
    for r in rows {
        let t = fmt_bpp(r.target_bpp);
        let src = decoded_path(out, &r.codec, r.target_bpp, &r.image)
            .exists()
            .then(|| url(&["images", &r.codec, &t, &png_name(&r.image)]));
        vrows.insert(
            format!("{}|{}|{}", r.image, r.codec, t),
            serde_json::json!({ "bpp": r.bpp, "psnr": r.psnr, "src": src }),
        );
    }
    let data = serde_json::json!({
        "images": images,
        "codecs": codecs,
        "targets": targets.iter().map(|t| fmt_bpp(*t)).collect::<Vec<_>>(),
        "originals": originals,
        "rows": vrows,
    });
    // `</` cannot close the script element from inside the JSON.
    let data = data.to_string().replace("</", "<\\/");
    let _ = write!(
        h,
        "<h2 id=\"view\">Viewer</h2>\n<div id=\"viewer\"><label>image <select id=\"pick-image\">\
         </select></label><label>rate <select id=\"pick-rate\"></select></label><label>codec \
         <select id=\"pick-codec\"></select></label><label>zoom <select id=\"pick-zoom\"></select>\
         </label><br><label><input type=\"radio\" name=\"mode\" \
         value=\"flip\" checked> flip</label><button id=\"flip\">showing decoded (flip)</button> \
         <label><input type=\"radio\" name=\"mode\" value=\"slide\"> slide</label><input \
         id=\"slider\" type=\"range\" min=\"0\" max=\"100\" value=\"50\"> <small>(left of the \
         divider: original; right: decoded)</small><div id=\"caption\"></div>\n<div id=\"stage\">\
         <img id=\"orig\" alt=\"original\"><img id=\"dec\" alt=\"decoded\"><div id=\"divider\">\
         </div></div></div>\n<script type=\"application/json\" id=\"viewer-data\">{data}</script>\n"
    );

    if !plots.is_empty() {
        let _ = writeln!(h, "<h2>Plots</h2>\n<div class=\"plots\">");
        for m in plots {
            let class = if *m == "realism_distortion" {
                " class=\"wide\""
            } else {
                ""
            };
            let _ = writeln!(
                h,
                "<a href=\"{m}.svg\"><img{class} src=\"{m}.svg\" alt=\"{m}\"></a>"
            );
        }
        let _ = writeln!(h, "</div>");
    }
    if !sheets.is_empty() {
        let _ = writeln!(
            h,
            "<h2>Comparison sheets</h2>\n<p>One row per target rate: the original, then every \
             codec, with the real bpp and the PSNR of the whole image under each tile.</p>"
        );
        for im in sheets {
            let u = url(&["sheets", &png_name(im)]);
            let _ = writeln!(
                h,
                "<div class=\"sheet\"><h3>{}</h3><a href=\"{u}\"><img loading=\"lazy\" \
                 src=\"{u}\" alt=\"sheet {}\"></a></div>",
                esc(im),
                esc(im)
            );
        }
    }
    let _ = write!(h, "<script>{JS}</script>\n</body></html>\n");
    h
}

fn table(h: &mut String, s: &Summary, rows: &[Row]) {
    let has_ref = s.realism.reference.is_some();
    let mut times: BTreeMap<(String, u64), (f64, f64, usize)> = BTreeMap::new();
    for r in rows {
        let t = times
            .entry((r.codec.clone(), r.target_bpp.to_bits()))
            .or_default();
        t.0 += r.enc_s;
        t.1 += r.dec_s;
        t.2 += 1;
    }
    let _ = write!(
        h,
        "<h2>Results</h2>\n<table id=\"results\"><thead><tr><th>codec</th><th>target bpp</th>\
         <th>mean bpp</th><th>hit</th><th>PSNR dB</th><th>MS-SSIM</th><th>FID paired</th>\
         <th>KID ×10³ paired</th><th>FID split</th><th>KID ×10³ split</th>{}<th>enc s</th>\
         <th>dec s</th></tr></thead><tbody>\n",
        if has_ref {
            "<th>FID ref</th><th>KID ×10³ ref</th>"
        } else {
            ""
        }
    );
    let mut entries: Vec<&Entry> = s.entries.iter().collect();
    entries.sort_by(|a, b| {
        a.target_bpp
            .total_cmp(&b.target_bpp)
            .then(a.codec.cmp(&b.codec))
    });
    for e in entries {
        let t = times
            .get(&(e.codec.clone(), e.target_bpp.to_bits()))
            .copied()
            .unwrap_or((0.0, 0.0, 1));
        let refcols = if has_ref {
            format!(
                "<td>{}</td><td>{}</td>",
                opt(e.fid_ref, 2),
                kid(e.kid_ref, e.kid_ref_std)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            h,
            "<tr{}><td>{}</td><td>{}</td><td>{:.4}</td><td>{}/{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td>{refcols}<td>{:.2}</td><td>{:.2}</td></tr>",
            if e.reached { "" } else { " class=\"miss\"" },
            esc(&e.codec),
            fmt_bpp(e.target_bpp),
            e.bpp,
            e.n_hit,
            e.n_images,
            opt(Some(e.psnr), 2),
            opt(e.ms_ssim, 4),
            opt(e.fid, 2),
            kid(e.kid, e.kid_std),
            opt(e.fid_split, 2),
            kid(e.kid_split, e.kid_split_std),
            t.0 / t.2 as f64,
            t.1 / t.2 as f64
        );
    }
    let _ = writeln!(h, "</tbody></table>");
}
