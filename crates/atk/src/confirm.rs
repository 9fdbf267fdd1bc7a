//! Safety confirmations asked for in a terminal: a create or rotate that
//! lacks some asks for each one, in the console's words, instead of
//! failing. Outside a terminal (scripts, CI) it fails as before.

use std::io::{BufRead, IsTerminal, Write};

use atk_core::catalog::Catalog;
use atk_core::policy::Confirmation;

use crate::CliError;
use crate::backend::missing_confirmations;

/// The confirmations the person gave for what `refused` lacked; the
/// refusal itself when it is another error, when there is no terminal to
/// ask in, or when any answer is not yes.
pub fn ask(refused: CliError) -> Result<Vec<Confirmation>, CliError> {
    let Some(missing) = missing_confirmations(&refused) else {
        return Err(refused);
    };
    if missing.is_empty() || !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(refused);
    }
    let stdin = std::io::stdin();
    let mut answers = stdin.lock();
    let mut given = Vec::new();
    for confirmation in missing {
        let text = Catalog::get()
            .confirmations
            .iter()
            .find(|info| info.id == confirmation)
            .map_or(confirmation.as_str(), |info| info.text.as_str());
        eprint!("{text} [y/N] ");
        std::io::stderr().flush().ok();
        let mut answer = String::new();
        if answers.read_line(&mut answer).is_err() || !is_yes(&answer) {
            return Err(refused);
        }
        given.push(confirmation);
    }
    Ok(given)
}

fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_explicit_yes_confirms() {
        for yes in ["y", "Y\n", " yes ", "YES\r\n"] {
            assert!(is_yes(yes), "{yes:?}");
        }
        for no in ["", "\n", "n", "no", "yep", "sure"] {
            assert!(!is_yes(no), "{no:?}");
        }
    }
}
