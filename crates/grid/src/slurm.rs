//! `siamese-tui slurm`: an sbatch script with one job-array task per unfinished cell, each
//! running `siamese-tui run-cell` on `$SLURM_ARRAY_TASK_ID`, and its submission with sbatch.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cell_folder::write_atomic;

/// Folder inside `runs/<experiment>/` for the script and the tasks' stdout/stderr.
pub const SLURM_DIR: &str = "slurm";

/// Everything the script says; paths are absolute (tasks start on other machines).
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayJob {
    pub experiment_name: String,
    /// Grid indices of the cells to run, ascending.
    pub cells: Vec<usize>,
    /// Cells in the whole grid (for the script's comment).
    pub grid_cells: usize,
    /// At most this many tasks at once (`%N`).
    pub max_parallel: usize,
    /// The siamese-tui binary, on a filesystem the compute nodes share.
    pub exe: PathBuf,
    pub experiment_file: PathBuf,
    /// The runs folder (`--out`).
    pub out: PathBuf,
    /// Where tasks start: relative paths in the experiment file are relative to it.
    pub workdir: PathBuf,
    pub iterations: Option<u32>,
    pub partition: Option<String>,
    pub time: Option<String>,
    pub cpus_per_task: Option<u32>,
    pub gpus_per_task: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error(
        "sbatch not found on PATH: --submit needs Slurm's client commands; the script is \
         written, submit it where Slurm runs with `sbatch {}`", .script.display()
    )]
    NoSbatch { script: PathBuf },
    #[error("sbatch {}: {source}", .script.display())]
    Spawn { script: PathBuf, source: io::Error },
    #[error("sbatch {} failed ({status}): {stderr}", .script.display())]
    Rejected {
        script: PathBuf,
        status: String,
        stderr: String,
    },
    #[error("sbatch --parsable printed `{0}`, expected a job id")]
    NoJobId(String),
    #[error("{0}")]
    BadValue(String),
}

/// Slurm's array list for `cells` (ascending): runs collapsed, e.g. `0-2,5,7-9`.
pub fn array_ranges(cells: &[usize]) -> String {
    let mut text = String::new();
    let mut i = 0;
    while i < cells.len() {
        let start = cells[i];
        while i + 1 < cells.len() && cells[i + 1] == cells[i] + 1 {
            i += 1;
        }
        if !text.is_empty() {
            text.push(',');
        }
        match cells[i] - start {
            0 => write!(text, "{start}"),
            _ => write!(text, "{start}-{}", cells[i]),
        }
        .expect("writing to a String");
        i += 1;
    }
    text
}

/// A value for an `#SBATCH` line: sbatch splits those lines itself, so no spaces or quotes.
fn directive_value(what: &str, value: &str) -> Result<String, SlurmError> {
    if value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || "\"'#\\".contains(c))
    {
        return Err(SlurmError::BadValue(format!(
            "{what} `{value}` cannot go on an #SBATCH line: expected no spaces, quotes, `#` or `\\`"
        )));
    }
    Ok(value.to_string())
}

fn quoted(path: &Path) -> Result<String, SlurmError> {
    let text = path.to_str().ok_or_else(|| {
        SlurmError::BadValue(format!("{}: the path is not UTF-8", path.display()))
    })?;
    shlex::try_quote(text)
        .map(|q| q.into_owned())
        .map_err(|e| SlurmError::BadValue(format!("{text}: {e}")))
}

impl ArrayJob {
    /// The grid's folder, `out/<experiment>/`.
    pub fn grid_dir(&self) -> PathBuf {
        self.out.join(&self.experiment_name)
    }

    /// The sbatch script.
    pub fn script(&self) -> Result<String, SlurmError> {
        let grid_dir = self.grid_dir();
        let logs = grid_dir.join(SLURM_DIR).join("%A_%a.out");
        let logs = directive_value("the task log path", &logs.to_string_lossy())?;
        let mut s = String::new();
        let mut line = |text: String| {
            s.push_str(&text);
            s.push('\n');
        };
        line("#!/bin/bash".into());
        line(format!(
            "# siamese-tui slurm: {} of the {} cells of `{}`, one job-array task each.",
            self.cells.len(),
            self.grid_cells,
            self.experiment_name
        ));
        line(format!(
            "# Each task trains one cell into {}/<cell>/; watch them with",
            grid_dir.display()
        ));
        line(format!(
            "#   {} --watch {}",
            self.exe.display(),
            grid_dir.display()
        ));
        line(format!(
            "#SBATCH --job-name={}",
            directive_value(
                "the experiment name",
                &format!("siamese-{}", self.experiment_name)
            )?
        ));
        line(format!(
            "#SBATCH --array={}%{}",
            array_ranges(&self.cells),
            self.max_parallel.max(1)
        ));
        line("#SBATCH --ntasks=1".into());
        line(format!("#SBATCH --output={logs}"));
        if let Some(p) = &self.partition {
            line(format!(
                "#SBATCH --partition={}",
                directive_value("--partition", p)?
            ));
        }
        if let Some(t) = &self.time {
            line(format!("#SBATCH --time={}", directive_value("--time", t)?));
        }
        if let Some(n) = self.cpus_per_task {
            line(format!("#SBATCH --cpus-per-task={n}"));
        }
        if let Some(n) = self.gpus_per_task {
            line(format!("#SBATCH --gpus-per-task={n}"));
        }
        line("set -eu".into());
        line(format!("cd {}", quoted(&self.workdir)?));
        let mut run = format!(
            "exec {} run-cell {} --cell \"$SLURM_ARRAY_TASK_ID\" --out {}",
            quoted(&self.exe)?,
            quoted(&self.experiment_file)?,
            quoted(&self.out)?
        );
        if let Some(n) = self.iterations {
            write!(run, " --iterations {n}").expect("writing to a String");
        }
        line(run);
        Ok(s)
    }

    /// Writes the script to `out/<experiment>/slurm/<experiment>.sbatch` (atomically) and
    /// makes the folder the task logs go to; returns the script's path.
    pub fn write(&self) -> Result<PathBuf, SlurmError> {
        let text = self.script()?;
        let dir = self.grid_dir().join(SLURM_DIR);
        let path = dir.join(format!("{}.sbatch", self.experiment_name));
        let at = |source| SlurmError::Spawn {
            script: path.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(at)?;
        write_atomic(&path, text.as_bytes()).map_err(at)?;
        Ok(path)
    }
}

/// Submits `script` with `sbatch --parsable`; returns the job id.
pub fn submit(script: &Path) -> Result<String, SlurmError> {
    let output = Command::new("sbatch")
        .arg("--parsable")
        .arg(script)
        .output()
        .map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => SlurmError::NoSbatch {
                script: script.to_path_buf(),
            },
            _ => SlurmError::Spawn {
                script: script.to_path_buf(),
                source,
            },
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(SlurmError::Rejected {
            script: script.to_path_buf(),
            status: output.status.to_string(),
            stderr: stderr.split_whitespace().collect::<Vec<_>>().join(" "),
        });
    }
    // `--parsable` prints `<job id>` or `<job id>;<cluster>`.
    let line = stdout.lines().last().unwrap_or("").trim();
    let id = line.split(';').next().unwrap_or("");
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(SlurmError::NoJobId(line.to_string()));
    }
    Ok(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_lists_collapse_runs() {
        let check = |cells: &[usize], expect: &str| assert_eq!(array_ranges(cells), expect);
        check(&[0, 1, 2], "0-2");
        check(&[0, 1, 2, 5, 7, 8, 9], "0-2,5,7-9");
        check(&[4], "4");
        check(&[1, 3], "1,3");
        check(&[], "");
    }

    #[test]
    fn directive_values_must_survive_sbatch_parsing() {
        assert_eq!(
            directive_value("--time", "1-00:00:00").unwrap(),
            "1-00:00:00"
        );
        let error = directive_value("--partition", "gpu long").unwrap_err();
        assert_eq!(
            error.to_string(),
            "--partition `gpu long` cannot go on an #SBATCH line: expected no spaces, quotes, `#` or `\\`"
        );
    }
}
