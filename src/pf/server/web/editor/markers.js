// A compiler's diagnostics in the editor: @codemirror/lint draws the underline, the
// gutter marker and the hover text; this module turns pf's {line, col, severity,
// message} into document ranges and writes each line's messages after its end, so they
// are read without hovering.

import { RangeSetBuilder } from "@codemirror/state";
import { Decoration, EditorView, ViewPlugin, WidgetType } from "@codemirror/view";
import { forEachDiagnostic, setDiagnosticsEffect } from "@codemirror/lint";

/** pf's severities (the compilers' words) as lint's four. */
function severityOf(word) {
  if (word === "error" || word === "fatal") return "error";
  if (word === "note" || word === "info") return "info";
  if (word === "help" || word === "hint") return "hint";
  return "warning";
}

/**
 * The range a diagnostic marks: the word at line:col, else the character there; past
 * the line's end (clang's "expected ';'" points after the last token) the word or
 * character before it. A diagnostic without a column marks its whole line.
 */
function rangeOf(doc, line, col) {
  const at = doc.line(Math.min(Math.max(line, 1), doc.lines));
  if (!col || col < 1) return { from: at.from, to: at.to };
  const text = at.text;
  let offset = Math.min(col - 1, text.length);
  if (offset === text.length) {
    offset = text.trimEnd().length - 1;
    if (offset < 0) return { from: at.from, to: at.to };
  }
  const word = /\w/;
  if (!word.test(text[offset])) return { from: at.from + offset, to: at.from + offset + 1 };
  let start = offset;
  let end = offset + 1;
  while (start > 0 && word.test(text[start - 1])) start -= 1;
  while (end < text.length && word.test(text[end])) end += 1;
  return { from: at.from + start, to: at.from + end };
}

/** pf's diagnostics as lint diagnostics for `doc` (lines past its end go to its last). */
export function toLint(doc, diagnostics) {
  return diagnostics.map((d) => ({
    ...rangeOf(doc, d.line, d.col),
    severity: severityOf(d.severity),
    message: d.message,
  }));
}

class Note extends WidgetType {
  constructor(line, severity, text) {
    super();
    this.line = line;
    this.severity = severity;
    this.text = text;
  }

  eq(other) {
    return other.severity === this.severity && other.text === this.text;
  }

  toDOM() {
    const node = document.createElement("span");
    node.className = `pf-note pf-note-${this.severity}`;
    node.dataset.line = String(this.line);
    node.textContent = this.text;
    return node;
  }
}

const RANK = { error: 3, warning: 2, info: 1, hint: 0 };

function notes(state) {
  const byLine = new Map();
  forEachDiagnostic(state, (d, from) => {
    const line = state.doc.lineAt(from);
    const entry = byLine.get(line.number) ?? { line, severity: d.severity, messages: [] };
    if (RANK[d.severity] > RANK[entry.severity]) entry.severity = d.severity;
    entry.messages.push(d.message);
    byLine.set(line.number, entry);
  });
  const builder = new RangeSetBuilder();
  for (const number of [...byLine.keys()].sort((a, b) => a - b)) {
    const { line, severity, messages } = byLine.get(number);
    const widget = new Note(number, severity, messages.join(" · "));
    builder.add(line.to, line.to, Decoration.widget({ widget, side: 1 }));
  }
  return builder.finish();
}

/** Each marked line's messages, in the severity's colour, after the line's end. */
export const inlineNotes = ViewPlugin.fromClass(
  class {
    constructor(view) {
      this.decorations = notes(view.state);
    }

    update(update) {
      const changed = update.transactions.some((tr) =>
        tr.effects.some((e) => e.is(setDiagnosticsEffect)),
      );
      if (changed || update.docChanged) this.decorations = notes(update.state);
    }
  },
  { decorations: (plugin) => plugin.decorations },
);

export const notesTheme = EditorView.baseTheme({
  ".pf-note": { marginLeft: "2.5ch", fontStyle: "italic", whiteSpace: "pre" },
  ".pf-note-error": { color: "var(--fail, #c92a2a)" },
  ".pf-note-warning": { color: "var(--warn, #e67700)" },
  ".pf-note-info, .pf-note-hint": { color: "var(--muted, #606672)" },
});
