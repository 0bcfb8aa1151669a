//! `hush-devserver [--port N] [--domain D] [--user NAME:PASSWORD]...`: runs the development
//! server on 127.0.0.1 until killed, for trying standard clients against it.

#![forbid(unsafe_code)]

use hush_devserver::{DevServer, Options};

const USAGE: &str = "usage: hush-devserver [--port N] [--domain DOMAIN] [--user NAME:PASSWORD]...";

/// Why the command line was not taken.
#[derive(Debug, thiserror::Error)]
enum ArgsError {
    /// `--help`: only the usage is printed.
    #[error("")]
    Help,
    /// An option without its value.
    #[error("{0} needs a value")]
    NoValue(String),
    /// `--port` with something other than a port number.
    #[error("--port needs a number from 0 to 65535")]
    BadPort,
    /// `--user` without a colon.
    #[error("--user needs NAME:PASSWORD")]
    BadUser,
    /// Anything else.
    #[error("unknown argument `{0}`")]
    Unknown(String),
}

fn parse() -> Result<(Options, Vec<(String, String)>), ArgsError> {
    let mut options = Options::default();
    let mut users = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| ArgsError::NoValue(arg.clone()));
        match arg.as_str() {
            "--port" => options.port = value()?.parse().map_err(|_| ArgsError::BadPort)?,
            "--domain" => options.domain = value()?,
            "--user" => {
                let v = value()?;
                let (name, password) = v.split_once(':').ok_or(ArgsError::BadUser)?;
                users.push((name.to_owned(), password.to_owned()));
            }
            "-h" | "--help" => return Err(ArgsError::Help),
            other => return Err(ArgsError::Unknown(other.to_owned())),
        }
    }
    Ok((options, users))
}

#[tokio::main]
async fn main() {
    let (options, users) = match parse() {
        Ok(parsed) => parsed,
        Err(why) => {
            if !matches!(why, ArgsError::Help) {
                eprintln!("error: {why}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    let server = match DevServer::start(options).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    for (name, password) in users {
        match server.register(&name, &password) {
            Ok(jid) => println!("user {jid}"),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
    }
    println!(
        "listening on {} for domain {} (plain TCP, loopback only; Ctrl-C stops)",
        server.address(),
        server.domain()
    );
    std::future::pending::<()>().await;
}
