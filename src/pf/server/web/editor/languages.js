// The playground's languages: a CodeMirror language and an indent unit for each. C uses
// the C++ grammar (C is near enough a subset for highlighting); Fortran and WebAssembly
// text use CodeMirror's ports of the CodeMirror 5 modes.

import { cpp } from "@codemirror/lang-cpp";
import { rust } from "@codemirror/lang-rust";
import { StreamLanguage } from "@codemirror/language";
import { fortran } from "@codemirror/legacy-modes/mode/fortran";
import { wast } from "@codemirror/legacy-modes/mode/wast";

const LANGUAGES = {
  c: { support: cpp, indent: 4 },
  rust: { support: rust, indent: 4 },
  fortran: { support: () => StreamLanguage.define(fortran), indent: 2 },
  wat: { support: () => StreamLanguage.define(wast), indent: 2 },
};

/** {support, indent} for a playground language name (c, rust, fortran, wat). */
export function languageOf(name) {
  const entry = LANGUAGES[name];
  if (!entry) throw new Error(`the editor knows no language ${JSON.stringify(name)}`);
  return { support: entry.support(), indent: " ".repeat(entry.indent) };
}
