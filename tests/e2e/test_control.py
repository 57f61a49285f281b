"""``if``/``else``/``for``, ``env``, groups, includes (and their cycles), aliases."""

from __future__ import annotations

from tests.e2e.conftest import Project


def test_if_else_and_for(project: Project) -> None:
    project.pfyfile(
        """
        task flow target="wasm" list="a,b c" flag
          if $target == "wasm"
            shell echo is-wasm
          else
            shell echo not-wasm
          end
          if $target != "wasm"
            shell echo other-target
          end
          if $flag
            shell echo flag-set
          else
            shell echo flag-unset
          end
          if `test -d /`
            shell echo cmd-true
          end
          if `false`
            shell echo never
          else
            shell echo cmd-false
          end
          for x in ["one", "two words"]
            shell echo "item: $x"
          end
          for y in $list
            env LAST=$y
            shell echo "from list: $y"
          end
          shell echo "last=$LAST"
        end
        """
    )
    done = project.run("flow")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "is-wasm\nflag-unset\ncmd-true\ncmd-false\nitem: one\nitem: two words\n"
        "from list: a\nfrom list: b\nfrom list: c\nlast=c\n"
    )
    done = project.run("flow", "target=llvm", "flag=1", "list=z")
    assert done.stdout.splitlines()[:3] == ["not-wasm", "other-target", "flag-set"]
    assert "from list: z" in done.stdout


def test_groups_from_pfyfile_group_files(project: Project) -> None:
    project.pfyfile(
        """
        env WHERE=main
        task build-rust
          shell echo "main build-rust"
        end
        """
    )
    project.write(
        "Pfyfile.web.pf",
        """
        env SIDE=web
        task build-rust opt="1" [alias br]
          describe The web group's build
          shell echo "web build-rust opt=$opt $WHERE $SIDE"
        end
        """,
    )
    assert project.run("build-rust").stdout == "main build-rust\n"
    done = project.run("web", "build-rust", "opt=3")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "web build-rust opt=3 main web\n"
    assert project.run("web:build-rust").stdout == "web build-rust opt=1 main web\n"
    assert project.run("web", "br").stdout == "web build-rust opt=1 main web\n"
    done = project.run("web", "build-rsut")
    assert done.returncode == 2
    assert "group `web` has no task `build-rsut`" in done.stderr
    assert "did you mean `web build-rust`?" in done.stderr
    done = project.run("wbe", "build-rust")
    assert done.returncode == 2 and "did you mean `web`?" in done.stderr


def test_includes_and_an_include_cycle(project: Project) -> None:
    project.pfyfile(
        """
        include lib/common.pf
        task main
          needs shared
          shell echo main
        end
        """
    )
    project.write("lib/common.pf", "task shared\n  shell echo shared\nend\n")
    done = project.run("main")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "shared\nmain\n"

    project.write("lib/common.pf", "include ../Pfyfile.pf\ntask shared\n  shell echo s\nend\n")
    done = project.run("main")
    assert done.returncode == 2
    assert "error: include cycle: Pfyfile.pf -> lib/common.pf -> Pfyfile.pf" in done.stderr
    assert "--> lib/common.pf:1:9" in done.stderr
    assert "Traceback" not in done.stderr


def test_aliases_and_duplicates(project: Project) -> None:
    project.pfyfile(
        """
        task build-c [alias bc|alias=buildc]
          shell echo built
        end
        """
    )
    assert project.run("bc").stdout == "built\n"
    assert project.run("buildc").stdout == "built\n"
    project.pfyfile(
        """
        task a
          shell echo 1
        end
        task a
          shell echo 2
        end
        """
    )
    # The later definition wins, as in the original; pf list warns with both positions.
    done = project.run("a")
    assert (done.returncode, done.stdout) == (0, "2\n")
    listed = project.run("list")
    assert listed.returncode == 0
    assert "`a` is defined again in the main scope" in listed.stderr
    assert "--> Pfyfile.pf:4:6" in listed.stderr and "--> Pfyfile.pf:1:6" in listed.stderr


def test_system_verbs_copy_and_sync_locally(project: Project) -> None:
    project.write("src/a.txt", "A\n")
    project.write("src/skip.log", "x\n")
    project.pfyfile(
        """
        task deploy dest="dist"
          directory $dest
          copy src/a.txt $dest/b.txt mode=0600
          sync src=src/ dest=mirror/ excludes=["*.log"]
          shell cat $dest/b.txt; ls mirror
        end
        """
    )
    done = project.run("deploy")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("A\n")
    assert "a.txt" in done.stdout and "skip.log" not in done.stdout
    assert (project.root / "dist" / "b.txt").stat().st_mode & 0o777 == 0o600
    assert "$ rsync" in done.stderr
