// The playground's source editor, CodeMirror 6: highlighting for C, Rust, Fortran and
// WebAssembly text, compiler diagnostics as markers at their line:col, undo history,
// bracket matching and auto-indent. scripts/setup.sh bundles this file and the
// CodeMirror packages it imports (pinned in ../package-lock.json) with esbuild into
// ../vendor/editor.js, which the page loads from /_pf/vendor/editor.js.
//
// Tokens get stable class names (tok-keyword, tok-string, ...; @lezer/highlight's
// classHighlighter), coloured by playground.css with pf's light and dark palettes.

import {
  defaultKeymap,
  history,
  historyKeymap,
  indentWithTab,
  isolateHistory,
} from "@codemirror/commands";
import {
  bracketMatching,
  indentOnInput,
  indentUnit,
  syntaxHighlighting,
} from "@codemirror/language";
import { lintGutter, setDiagnostics } from "@codemirror/lint";
import { EditorState, Prec } from "@codemirror/state";
import {
  drawSelection,
  EditorView,
  highlightActiveLine,
  highlightActiveLineGutter,
  keymap,
  lineNumbers,
} from "@codemirror/view";
import { classHighlighter } from "@lezer/highlight";
import { languageOf } from "./languages.js";
import { inlineNotes, notesTheme, toLint } from "./markers.js";

const theme = EditorView.theme({
  "&": { height: "100%", backgroundColor: "var(--bg)", color: "var(--fg)" },
  "&.cm-focused": { outline: "none" },
  ".cm-scroller": { fontFamily: "var(--mono)", fontSize: "13px", lineHeight: "20px" },
  ".cm-content": { caretColor: "var(--fg)" },
  ".cm-cursor": { borderLeftColor: "var(--fg)" },
  ".cm-gutters": {
    backgroundColor: "var(--bg)",
    color: "var(--muted)",
    borderRight: "1px solid var(--border)",
  },
  ".cm-activeLine, .cm-activeLineGutter": {
    backgroundColor: "color-mix(in srgb, var(--accent) 7%, transparent)",
  },
  "&.cm-focused .cm-selectionBackground, .cm-selectionBackground": {
    backgroundColor: "color-mix(in srgb, var(--accent) 25%, transparent)",
  },
  ".cm-tooltip": {
    backgroundColor: "var(--card)",
    color: "var(--fg)",
    border: "1px solid var(--border)",
  },
});

/**
 * An editor in `parent` for `language` holding `text`.
 *
 * `onChange(text)` follows every edit, `onCursor(line, column)` the caret and
 * `onSubmit()` is Ctrl+Enter (Cmd+Enter). Tab indents; Escape then Tab leaves the editor,
 * so keyboard users are never trapped in it.
 */
export function createEditor({ parent, language, text, label, onChange, onCursor, onSubmit }) {
  const configure = (name) => {
    const { support, indent } = languageOf(name);
    return [support, indentUnit.of(indent), EditorState.tabSize.of(indent.length)];
  };
  const extensions = (name) => [
    lineNumbers(),
    highlightActiveLineGutter(),
    lintGutter(),
    history(),
    drawSelection(),
    indentOnInput(),
    bracketMatching(),
    highlightActiveLine(),
    syntaxHighlighting(classHighlighter),
    inlineNotes,
    notesTheme,
    theme,
    configure(name),
    Prec.highest(keymap.of([{ key: "Mod-Enter", run: () => (onSubmit(), true) }])),
    keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
    EditorView.contentAttributes.of({ "aria-label": label }),
    EditorView.updateListener.of((update) => {
      if (update.docChanged) onChange(update.state.doc.toString());
      if (update.docChanged || update.selectionSet) {
        const head = update.state.selection.main.head;
        const line = update.state.doc.lineAt(head);
        onCursor(line.number, head - line.from + 1);
      }
    }),
  ];
  const fresh = (name, doc) => EditorState.create({ doc, extensions: extensions(name) });
  const view = new EditorView({ parent, state: fresh(language, text) });

  return {
    /** The text as it is now. */
    text: () => view.state.doc.toString(),

    /** Another language's file: its text, its highlighting and a history of its own. */
    open(name, doc) {
      view.setState(fresh(name, doc));
      onCursor(1, 1);
    },

    /** Replaces the whole text as one edit (undo brings the old text back). */
    replace(doc) {
      view.dispatch({
        changes: { from: 0, to: view.state.doc.length, insert: doc },
        annotations: isolateHistory.of("full"),
      });
    },

    /** Marks pf's diagnostics ({line, col, severity, message}); [] clears them. */
    mark(diagnostics) {
      view.dispatch(setDiagnostics(view.state, toLint(view.state.doc, diagnostics)));
    },

    /** Puts the caret at line:col, scrolls it into view and focuses the editor. */
    goTo(line, col = 1) {
      const doc = view.state.doc;
      const at = doc.line(Math.min(Math.max(line, 1), doc.lines));
      const pos = Math.min(at.from + Math.max(col - 1, 0), at.to);
      view.dispatch({ selection: { anchor: pos }, scrollIntoView: true });
      view.focus();
    },
  };
}
