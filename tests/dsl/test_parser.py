"""Parser tables: Pfyfile text -> tree dump, and text -> (line, col, width, kind) errors."""

from __future__ import annotations

import textwrap

import pytest

from pf.dsl import DslError, dump, parse_text


def tree(text: str) -> str:
    return dump(parse_text(textwrap.dedent(text)))


def expected(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


# (id, Pfyfile text, dump of the resolved model)
TREES = [
    (
        "spec-example",
        """\
        task build-c opt_level="3" target="wasm" [alias bc|alias=buildc]
          describe Build the C demo
          env CC=clang CFLAGS="-O${opt_level}"
          shell mkdir -p out && $CC $CFLAGS -c src/main.c -o out/main.o
        end
        """,
        """
        task build-c opt_level="3" target="wasm" [alias bc|alias buildc]
          describe "Build the C demo"
          env CC="clang" CFLAGS="-O${opt_level}"
          shell "mkdir -p out && $CC $CFLAGS -c src/main.c -o out/main.o"
        end
        """,
    ),
    (
        "comments-and-blanks",
        """\
        # a comment

           # an indented comment
        task a
          # inside a task
          shell echo hi # not a comment: bash gets it

        end
        """,
        """
        task a
          shell "echo hi # not a comment: bash gets it"
        end
        """,
    ),
    (
        "shell-kept-exactly",
        """\
        task a
          shell cat x | grep -v '^#' && echo "${x:-d} ${y:+alt}" > out.txt 2>&1
          shell echo $(date) `pwd` $((1 + 2)) "a  b"   'c\\d'
        end
        """,
        """
        task a
          shell "cat x | grep -v '^#' && echo \\"${x:-d} ${y:+alt}\\" > out.txt 2>&1"
          shell "echo $(date) `pwd` $((1 + 2)) \\"a  b\\"   'c\\\\d'"
        end
        """,
    ),
    (
        "line-continuation",
        """\
        task a \\
            p=1
          shell cc -O2 \\
              -c a.c \\
              -o a.o
          shell echo abc\\
            def
        end
        """,
        """
        task a p="1"
          shell "cc -O2 -c a.c -o a.o"
          shell "echo abcdef"
        end
        """,
    ),
    (
        "header-forms",
        """\
        task x.y_z-1 a b="" c='single q' d="say \\"hi\\"" [alias x1]
        end
        task t [alias=t1|alias t2]
        end
        """,
        """
        task x.y_z-1 a b="" c="single q" d="say \\"hi\\"" [alias x1]
        end
        task t [alias t1|alias t2]
        end
        """,
    ),
    (
        "metadata",
        """\
        task a
          describe "Quoted describe"
          describe second line
          synopsis pf a [x=1]
          example pf a x=2
          example pf a x=3
          note needs network
          tag build web
          tag ci
        end
        """,
        """
        task a
          describe "Quoted describe\\nsecond line"
          synopsis "pf a [x=1]"
          example "pf a x=2"
          example "pf a x=3"
          note "needs network"
          tag build web ci
        end
        """,
    ),
    (
        "shell-lang-sticky",
        """\
        task a
          shell echo bash
          shell_lang python
          shell print(1)
          shell [lang:node] console.log(2)
          shell print(3)
          shell_lang default
          shell echo bash again
          shell [LANG:Py] print(4)
          shell [ -f x ] && echo test-command
        end
        """,
        """
        task a
          shell "echo bash"
          shell_lang python
          shell[python] "print(1)"
          shell[node] "console.log(2)"
          shell[python] "print(3)"
          shell_lang default
          shell "echo bash again"
          shell[py] "print(4)"
          shell "[ -f x ] && echo test-command"
        end
        """,
    ),
    (
        "shell-file",
        """\
        task a
          shell [lang:python] @scripts/x.py -- one "two three"
          shell [lang:perl] @x.pl
          shell @"my script.sh" a b
        end
        """,
        """
        task a
          shell[python] @"scripts/x.py" -- "one" "two three"
          shell[perl] @"x.pl"
          shell @"my script.sh" -- "a" "b"
        end
        """,
    ),
    (
        "heredoc",
        """\
        task a
          shell [lang:python] << EOF
            import sys
            if True:
                print(1)  \\
          # no comment
          EOF
          shell <<'END'
          echo $HOME
          END
          shell [lang:bash] <<-X
          X
        end
        """,
        """
        task a
          shell[python] <<"  import sys\\n  if True:\\n      print(1)  \\\\\\n# no comment\\n"
          shell <<"echo $HOME\\n"
          shell[bash] <<""
        end
        """,
    ),
    (
        "shell-block",
        """\
        task a x-y
          shell |
            echo $x-y
            if true; then

              # kept: bash reads it
              echo yes
            fi

          shell [lang:python] |
              print(1)
        shell |
          echo at the task's own margin
        end
        """,
        """
        task a x-y
          shell "echo ${x_y}\\nif true; then\\n\\n  # kept: bash reads it\\n  echo yes\\nfi\\n"
          shell[python] "print(1)\\n"
          shell "echo at the task's own margin\\n"
        end
        """,
    ),
    (
        "plain-heredocs",
        """\
        task a x-y
          shell cat << 'EOF' > f.txt
            $x-y stays: quoted
          EOF
          shell python3 - <<PYEOF | sort
          print("$x-y")
          PYEOF
          shell cat <<A <<-"B"
          a
          A
          b
            B
          shell echo $((1 << 2)) "<< no" <<< here
          shell [lang:python] print(1 << 2)
        end
        """,
        """
        task a x-y
          shell "cat << 'EOF' > f.txt\\n$x-y stays: quoted\\nEOF\\n"
          shell "python3 - <<PYEOF | sort\\nprint(\\"${x_y}\\")\\nPYEOF\\n"
          shell "cat <<A <<-\\"B\\"\\na\\nA\\nb\\nB\\n"
          shell "echo $((1 << 2)) \\"<< no\\" <<< here"
          shell[python] "print(1 << 2)"
        end
        """,
    ),
    (
        "comment-in-continuation",
        """\
        task a
          shell docker run \\
            # the image
            --rm \\
            # last \\
            alpine
        end
        """,
        """
        task a
          shell "docker run --rm alpine"
        end
        """,
    ),
    (
        "env",
        """\
        env ROOT=/srv NAME="pf demo"
        task a
          env A=1 B='two words' C="${A}x" D=
        end
        """,
        """
        env ROOT="/srv"
        env NAME="pf demo"
        task a
          env A="1" B="two words" C="${A}x" D=""
        end
        """,
    ),
    (
        "hosts",
        """\
        hosts prod = ubuntu@10.0.0.5:22, punk@10.4.4.4:24
        hosts staging=[s1, "s2"]
        """,
        """
        hosts prod = ubuntu@10.0.0.5:22, punk@10.4.4.4:24
        hosts staging = s1, s2
        """,
    ),
    (
        "if-else",
        """\
        task a
          if $x == "v"
            shell echo eq
          else
            shell echo ne
          end
          if ${mode} != release
            shell echo debug
          end
          if $flag
            if `command -v cargo`
              cargo build
            end
          end
        end
        """,
        """
        task a
          if "$x" == "v"
            shell "echo eq"
          else
            shell "echo ne"
          end
          if "${mode}" != "release"
            shell "echo debug"
          end
          if "$flag"
            if `command -v cargo`
              cargo "build"
            end
          end
        end
        """,
    ),
    (
        "for",
        """\
        task a
          for t in ["wasm", "llvm-ir", 'asm js']
            shell echo $t
          end
          for f in $files
            shell echo $f
          end
          for n in 1 2 3
          end
          for e in []
          end
        end
        """,
        """
        task a
          for t in ["wasm", "llvm-ir", "asm js"]
            shell "echo $t"
          end
          for f in "$files"
            shell "echo $f"
          end
          for n in ["1", "2", "3"]
          end
          for e in []
          end
        end
        """,
    ),
    (
        "build-helpers",
        """\
        task a
          makefile all install jobs=4 CC=clang
          make -C sub
          cmake . build_dir=build build_type=Release target=app jobs=2 FOO=bar
          meson builddir=out
          ninja
          cargo build release=true features="a b" target=wasm32-unknown-unknown
          go_build output=bin/app ./cmd/app
          configure prefix=/usr ssl=true
          just test
          build_detect
          autobuild dir=. jobs=8 release=true
        end
        """,
        """
        task a
          makefile "all" "install" jobs="4" CC="clang"
          make "-C" "sub"
          cmake "." build_dir="build" build_type="Release" target="app" jobs="2" FOO="bar"
          meson builddir="out"
          ninja
          cargo "build" release="true" features="a b" target="wasm32-unknown-unknown"
          go_build "./cmd/app" output="bin/app"
          configure prefix="/usr" ssl="true"
          just "test"
          build_detect
          autobuild dir="." jobs="8" release="true"
        end
        """,
    ),
    (
        "system-verbs",
        """\
        task a
          packages install vim curl
          packages remove nano
          service restart nginx
          directory /srv/app mode=755
          copy a.conf /etc/a.conf mode=644 user=root group=root
          sync src=d/ dest=/w host=h user=u port=2 excludes=["*.log", "t/"] delete dry
        end
        """,
        """
        task a
          packages "install" "vim" "curl"
          packages "remove" "nano"
          service "restart" "nginx"
          directory "/srv/app" mode="755"
          copy "a.conf" "/etc/a.conf" mode="644" user="root" group="root"
          sync "delete" "dry" src="d/" dest="/w" host="h" user="u" port="2" excludes=["*.log", "t/"]
        end
        """,
    ),
    (
        "new-verbs",
        """\
        task lib
        end
        task a
          needs lib
          sources src/*.c include/**/*.h
          sources Makefile
          generates out/a.wasm
          compile demos/x/c/*.c target=wasm out=web/wasm/c opt_level=2
        end
        """,
        """
        task lib
        end
        task a
          needs lib
          sources "src/*.c" "include/**/*.h" "Makefile"
          generates "out/a.wasm"
          compile "demos/x/c/*.c" target="wasm" out="web/wasm/c" opt_level="2"
        end
        """,
    ),
    (
        "quotes-and-escapes-in-args",
        """\
        task a
          copy "a file" 'b file' mode=0644
          directory "quote\\"inside" x=a\\ b y="tab\\there"
          compile "$$HOME/x.c" out=$out
        end
        """,
        """
        task a
          copy "a file" "b file" mode="0644"
          directory "quote\\"inside" x="a b" y="tab\\there"
          compile "$$HOME/x.c" out="$out"
        end
        """,
    ),
    (
        "crlf-and-tabs",
        "task a\r\n\tshell echo crlf\r\n\tmake\tall\tjobs=2\r\nend\r\n",
        """
        task a
          shell "echo crlf"
          make "all" jobs="2"
        end
        """,
    ),
]


@pytest.mark.parametrize(("text", "dumped"), [pytest.param(t, d, id=i) for i, t, d in TREES])
def test_tree(text: str, dumped: str) -> None:
    assert tree(text) == expected(dumped)


# (id, text, line, col, width, kind): the caret of every error the parser reports.
ERRORS = [
    ("unknown-top", "taks a\nend\n", 1, 1, 4, "unknown-statement"),
    ("if-outside", "if $x\nend\n", 1, 1, 2, "verb-outside-task"),
    ("missing-end-if", "task a\n  if $x\n    shell y\n", 2, 3, 2, "missing-end"),
    ("missing-end-for", "task a\n  for x in [a]\n", 2, 3, 3, "missing-end"),
    ("task-before-end", "task a\ntask b\nend\n", 1, 1, 4, "missing-end"),
    ("stray-end", "end\n", 1, 1, 3, "stray-end"),
    ("stray-else-top", "else\n", 1, 1, 4, "stray-else"),
    ("stray-else-task", "task a\n  else\nend\n", 2, 3, 4, "stray-else"),
    ("stray-else-for", "task a\n  for x in a\n  else\n  end\nend\n", 3, 3, 4, "stray-else"),
    ("duplicate-else", "task a\n  if $x\n  else\n  else\n  end\nend\n", 4, 3, 4, "duplicate-else"),
    ("end-trailing", "task a\nend now\n", 2, 5, 3, "trailing-words"),
    ("include-in-task", "task a\n  include x.pf\nend\n", 2, 3, 7, "top-level-only"),
    ("hosts-in-task", "task a\n  hosts x = a\nend\n", 2, 3, 5, "top-level-only"),
    (
        "declaration-in-if",
        "task a\n  if $x\n    describe x\n  end\nend\n",
        3,
        5,
        8,
        "declaration-in-block",
    ),
    ("missing-name", "task\nend\n", 1, 5, 0, "missing-task-name"),
    ("bad-name", "task a/b\nend\n", 1, 6, 3, "invalid-task-name"),
    ("dash-name", "task -a\nend\n", 1, 6, 2, "invalid-task-name"),
    ("bad-param", "task a x-=1\nend\n", 1, 8, 4, "invalid-parameter"),
    ("dup-param", "task a x=1 x=2\nend\n", 1, 12, 3, "duplicate-parameter"),
    ("bad-alias", "task a [alias b|c]\nend\n", 1, 17, 1, "invalid-alias"),
    ("bad-alias-glued", "task a [aliasb]\nend\n", 1, 9, 6, "invalid-alias"),
    ("unterminated-dq", 'task a\n  env X="abc\nend\n', 2, 9, 1, "unterminated-string"),
    ("unterminated-sq", "task a x='y\nend\n", 1, 10, 1, "unterminated-string"),
    ("unterminated-list", "task a\n  make x=[1, 2\nend\n", 2, 10, 1, "unterminated-list"),
    ("unterminated-heredoc", "task a\n  shell <<EOF\n  x\n", 2, 9, 5, "unterminated-heredoc"),
    ("shell-empty", "task a\n  shell\nend\n", 2, 8, 0, "missing-argument"),
    ("shell-block-empty", "task a\n  shell |\n  shell x\nend\n", 2, 10, 0, "missing-argument"),
    (
        "plain-heredoc-open",
        "task a\n  shell cat <<X >f\n  x\nend\n",
        2,
        13,
        2,
        "unterminated-heredoc",
    ),
    ("shell-lang-empty", "task a\n  shell [lang:py]\nend\n", 2, 18, 0, "missing-argument"),
    ("bad-lang-tag", "task a\n  shell [lang:] x\nend\n", 2, 9, 7, "invalid-lang-tag"),
    ("unclosed-lang-tag", "task a\n  shell [lang:py x\nend\n", 2, 9, 8, "invalid-lang-tag"),
    ("shell-at-empty", "task a\n  shell @ x\nend\n", 2, 10, 0, "missing-argument"),
    ("shell-lang-missing", "task a\n  shell_lang\nend\n", 2, 13, 0, "missing-argument"),
    ("shell-lang-two", "task a\n  shell_lang a b\nend\n", 2, 16, 1, "trailing-words"),
    ("env-empty", "task a\n  env\nend\n", 2, 6, 0, "missing-argument"),
    ("env-no-eq", "task a\n  env A=1 B\nend\n", 2, 11, 1, "expected-key-value"),
    ("env-bad-key", "task a\n  env a.b=1\nend\n", 2, 7, 5, "invalid-argument"),
    ("env-list", "task a\n  env A=[1]\nend\n", 2, 7, 5, "list-not-allowed"),
    ("top-env-no-eq", "env X\n", 1, 5, 1, "expected-key-value"),
    ("if-empty", "task a\n  if\n  end\nend\n", 2, 5, 0, "invalid-condition"),
    ("if-bad-op", 'task a\n  if $x = "v"\n  end\nend\n', 2, 6, 8, "invalid-condition"),
    ("if-unclosed-backtick", "task a\n  if `ls\n  end\nend\n", 2, 6, 3, "invalid-condition"),
    ("for-no-in", "task a\n  for x of [a]\n  end\nend\n", 2, 7, 8, "invalid-for"),
    ("for-bad-var", "task a\n  for 1x in a\n  end\nend\n", 2, 7, 7, "invalid-for"),
    ("for-empty", "task a\n  for\n  end\nend\n", 2, 3, 3, "invalid-for"),
    ("describe-empty", "task a\n  describe\nend\n", 2, 11, 0, "missing-argument"),
    ("needs-empty", "task a\n  needs\nend\n", 2, 8, 0, "missing-argument"),
    ("needs-kv", "task a\n  needs b=1\nend\n", 2, 9, 3, "invalid-argument"),
    ("sources-empty", "task a\n  sources   \nend\n", 2, 10, 0, "missing-argument"),
    ("positional-list", "task a\n  make [a]\nend\n", 2, 8, 3, "list-not-allowed"),
    ("dup-kwarg", "task a\n  make jobs=1 jobs=2\nend\n", 2, 15, 6, "duplicate-argument"),
    ("cargo-no-sub", "task a\n  cargo release=true\nend\n", 2, 21, 0, "missing-argument"),
    ("copy-one", "task a\n  copy a\nend\n", 2, 9, 0, "missing-argument"),
    ("packages-typo", "task a\n  packages instal vim\nend\n", 2, 12, 6, "invalid-argument"),
    ("packages-no-names", "task a\n  packages remove\nend\n", 2, 18, 0, "missing-argument"),
    ("service-one", "task a\n  service restart\nend\n", 2, 18, 0, "missing-argument"),
    ("directory-none", "task a\n  directory mode=1\nend\n", 2, 19, 0, "missing-argument"),
    ("compile-none", "task a\n  compile target=wasm\nend\n", 2, 22, 0, "missing-argument"),
    ("sync-no-dest", "task a\n  sync src=a\nend\n", 2, 13, 0, "missing-argument"),
    ("include-none", "include\n", 1, 8, 0, "missing-argument"),
    ("include-two", "include a b\n", 1, 11, 1, "trailing-words"),
    ("include-empty", 'include ""\n', 1, 9, 0, "missing-argument"),
    ("include-nul", "include a\x00b\n", 1, 9, 3, "read-error"),
    ("hosts-no-eq", "hosts prod a\n", 1, 7, 6, "invalid-hosts"),
    ("hosts-empty", "hosts prod =\n", 1, 7, 6, "invalid-hosts"),
    ("continued-error", "task a\n  make x \\\n    y=[1\nend\n", 3, 7, 1, "unterminated-list"),
    ("tab-column", "task a\n\tinclude x\nend\n", 2, 2, 7, "top-level-only"),
]


@pytest.mark.parametrize(
    ("text", "line", "col", "width", "kind"),
    [pytest.param(t, ln, c, w, k, id=i) for i, t, ln, c, w, k in ERRORS],
)
def test_error(text: str, line: int, col: int, width: int, kind: str) -> None:
    with pytest.raises(DslError) as caught:
        parse_text(text)
    error = caught.value
    assert error.kind == kind
    assert error.span is not None
    assert (error.span.line, error.span.col, error.span.length) == (line, col, width)
    assert error.exit_code == 2


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("task a\n  shel x\nend\n", "did you mean `shell`?"),
        ("task a\n  sorces x\nend\n", "did you mean `sources`?"),
        ("task a\n  cmak .\nend\n", "did you mean `cmake`?"),
        ("task a\n  xyzzy --now\nend\n", "to run it in bash, write `shell xyzzy --now`"),
    ],
)
def test_a_bare_command_warns_with_a_suggestion(text: str, hint: str) -> None:
    [warning] = parse_text(text).warnings
    assert (warning.kind, warning.hint) == ("bare-command", hint)


def test_an_unknown_top_level_word_suggests() -> None:
    with pytest.raises(DslError) as caught:
        parse_text("tsk a\nend\n")
    assert caught.value.hint == "did you mean `task`?"


def test_missing_end_names_the_block_and_the_next_task() -> None:
    with pytest.raises(DslError) as caught:
        parse_text("task a\n  shell x\ntask b\nend\n")
    error = caught.value
    assert error.message == "`task a` is never closed"
    assert [(s.line, s.col) for s in error.related] == [(3, 1)]
    assert error.related_label == "`task` starts here before the `end`"


def test_nodes_are_immutable_records_with_spans() -> None:
    import pickle

    from pf.dsl import Verb

    pf = parse_text("task a\n  make all  jobs=4 V=1\nend\n")
    [verb] = pf.tasks[None, "a"].body
    assert isinstance(verb, Verb)
    assert (verb.name, verb.args, verb.kwargs) == ("make", ("all",), {"jobs": "4", "V": "1"})
    assert [(s.line, s.col, s.length) for s in verb.arg_spans] == [(2, 8, 3)]
    assert {k: (s.col, s.length) for k, s in verb.kwarg_spans.items()} == {
        "jobs": (13, 6),
        "V": (20, 3),
    }
    assert (verb.span.col, verb.span.length) == (3, 20)
    with pytest.raises(AttributeError):
        verb.name = "x"  # type: ignore[misc]
    task = pf.tasks[None, "a"]
    assert pickle.loads(pickle.dumps(task.params)) == task.params
    assert repr(verb) == '<Verb make "all" jobs="4" V="1">'
