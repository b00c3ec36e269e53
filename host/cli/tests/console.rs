//! The console (`GET /`) in a real browser: headless chromium driven through
//! chromedriver (WebDriver, on loopback) against a real `reyna serve`.
//!
//! - sign-in: a wrong token is refused with the API's message, the
//!   operator's token shows the navigation, sign-out forgets the token;
//! - the Studio: a chapter sent from the page comes back as its expansion
//!   and its word statistics, live, without a reload; a second chapter
//!   (Ctrl+Enter) and the compile button make a book of both;
//! - lineage: a derived blob's page draws its parent, and clicking the
//!   parent opens the parent's page;
//! - plugins: uploading a file that is not a plugin shows the API's refusal
//!   and changes nothing;
//! - dead letters: replaying one from its row replays the job;
//! - every page at a desktop and a phone size reaches `data-ready` without
//!   making the document wider than the window.
//!
//! Each test saves screenshots of the pages it visits to
//! `<target dir>/console-screenshots/<test>-<page>-<w>x<h>.png`. chromium
//! and chromedriver are installed by `cargo xtask test`; without them these
//! tests fail and say so. Every wait is bounded and waits on the event.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

mod common;

use common::{Host, WAIT, client, get_json, post_text, settled_derived};

/// Bound on each wait for something to show in the page (the browser and
/// the host share the machine with the rest of the test run).
const UI_WAIT: Duration = Duration::from_secs(30);

/// Bound on chromedriver saying it listens.
const DRIVER_START: Duration = Duration::from_secs(30);

/// The two window sizes every page is checked at: a desktop and a phone.
const DESKTOP: (u32, u32) = (1280, 800);
const PHONE: (u32, u32) = (390, 844);

/// Every page of the console, by its route.
const PAGES: [&str; 9] = [
    "#/overview",
    "#/blobs",
    "#/blobs/{id}",
    "#/plugins",
    "#/dead-letters",
    "#/jobs",
    "#/schemas",
    "#/audit",
    "#/studio",
];

/// A chapter long enough for `text-input-v1` (at least 10 characters).
const CHAPTER: &str = "The lighthouse keeper counted the ships at dusk. \
    Three came home; the fourth was late, and the sea was rising.";

/// The book's second chapter.
const CHAPTER_TWO: &str = "At midnight the fourth ship rounded the point. \
    The keeper lit a second lamp and went down to the harbour.";

/// The path of `program` on the PATH; fails the test, naming the command
/// that installs it, when it is not there.
fn required_program(program: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{program}` is not on the PATH: the console's browser tests need chromium and \
             chromedriver; run the tests with `cargo xtask test`, which installs them \
             (Debian packages `chromium` and `chromium-driver`)"
        )
    })
}

/// Where screenshots go: `<target dir>/console-screenshots` (created).
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().unwrap();
            exe.ancestors()
                .find(|dir| dir.file_name().is_some_and(|name| name == "target"))
                // <target>/<profile>/deps/<test binary>
                .or_else(|| exe.ancestors().nth(3))
                .unwrap()
                .to_owned()
        });
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A chromedriver on a free loopback port (it picks one: `--port=0`),
/// with the browsers it starts in its own process group; the group is
/// killed on drop, so a failing test leaves no browser behind.
struct Driver {
    child: Option<Child>,
    url: String,
}

impl Driver {
    fn start(log: &Path) -> Driver {
        use std::io::{BufRead as _, BufReader, Write as _};
        use std::os::unix::process::CommandExt as _;
        let program = required_program("chromedriver");
        let mut child = Command::new(program)
            .args(["--port=0", "--log-level=WARNING"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        // Its output goes to the log file; the port, once it says it
        // ("ChromeDriver was started successfully on port 40475."), comes
        // back over the channel. The reader keeps draining until it exits.
        let stdout = child.stdout.take().unwrap();
        let mut file = std::fs::File::create(log).unwrap();
        let (tx, ports) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                if let Some(port) = line
                    .split_once("started successfully on port ")
                    .and_then(|(_, rest)| rest.split_once('.'))
                    .map(|(port, _)| port)
                    .filter(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
                {
                    let _ = tx.send(port.to_owned());
                }
            }
        });
        let mut driver = Driver {
            child: Some(child),
            url: String::new(),
        };
        match ports.recv_timeout(DRIVER_START) {
            Ok(port) => {
                driver.url = format!("http://127.0.0.1:{port}");
                driver
            }
            Err(e) => {
                let status = driver.child.as_mut().unwrap().try_wait().unwrap();
                let text = std::fs::read_to_string(log).unwrap_or_default();
                match status {
                    Some(status) => {
                        panic!("chromedriver exited ({status}) before listening: {text}")
                    }
                    None => {
                        panic!("chromedriver did not listen within {DRIVER_START:?} ({e}): {text}")
                    }
                }
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The whole group: chromedriver and the browsers it started.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `reyna serve` on loopback in a temporary folder, its operator's token
/// and an HTTP client.
struct Reyna {
    host: Host,
    token: String,
    http: reqwest::Client,
    // Dropped after the host (declaration order).
    _dir: tempfile::TempDir,
}

impl Reyna {
    fn start() -> Reyna {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::start(dir.path(), &[]);
        Reyna {
            token: host.token(),
            host,
            http: client(),
            _dir: dir,
        }
    }
}

/// One browser session of one test, on the console of `host`.
struct Browser {
    client: Client,
    // Dropped after the client (declaration order): kills the browser if
    // the test did not close it.
    _driver: Driver,
    test: &'static str,
    shots: PathBuf,
    size: Cell<(u32, u32)>,
}

impl Browser {
    /// Starts chromedriver and a headless chromium at the desktop size, and
    /// opens the console of `host` (signed out).
    async fn open(test: &'static str, host: &Host) -> Browser {
        let chromium = required_program("chromium");
        let shots = screenshot_dir();
        let driver = Driver::start(&shots.join(format!("{test}-chromedriver.log")));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,800",
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|e| panic!("no chromium session through chromedriver: {e}"));
        let browser = Browser {
            client,
            _driver: driver,
            test,
            shots,
            size: Cell::new(DESKTOP),
        };
        browser.resize(DESKTOP).await;
        browser
            .client
            .goto(&format!("{}/", host.url))
            .await
            .unwrap();
        browser
    }

    /// [`Browser::open`], then [`Browser::sign_in`] with `token`.
    async fn signed_in(test: &'static str, host: &Host, token: &str) -> Browser {
        let browser = Browser::open(test, host).await;
        browser.sign_in(token).await;
        browser
    }

    /// Ends the browser session.
    async fn close(self) {
        self.client.close().await.unwrap();
    }

    /// Sets the window so that the page's viewport is `width` x `height`
    /// CSS pixels, and checks `window.innerWidth`.
    async fn resize(&self, (width, height): (u32, u32)) {
        self.client.set_window_size(width, height).await.unwrap();
        let inner = self.inner_size().await;
        if inner != (width, height) {
            // The window is bigger than its viewport by its frame, if any.
            let w = (2 * width).saturating_sub(inner.0);
            let h = (2 * height).saturating_sub(inner.1);
            self.client.set_window_size(w, h).await.unwrap();
        }
        let inner = self.inner_size().await;
        assert_eq!(
            inner.0, width,
            "window.innerWidth after setting the window to {width}x{height}"
        );
        self.size.set((width, height));
    }

    async fn inner_size(&self) -> (u32, u32) {
        let size = self
            .js("return [window.innerWidth, window.innerHeight]")
            .await;
        let dim = |i: usize| u32::try_from(size[i].as_u64().unwrap()).unwrap();
        (dim(0), dim(1))
    }

    /// Runs `script` (a function body) in the page and returns its result.
    async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Scrolls the element matching `css` into view (for a screenshot).
    async fn show(&self, css: &str) {
        self.client
            .execute(
                "document.querySelector(arguments[0]).scrollIntoView({ block: 'start' })",
                vec![json!(css)],
            )
            .await
            .unwrap_or_else(|e| panic!("cannot scroll to `{css}`: {e}"));
    }

    /// Saves a screenshot as `<test>-<page>-<w>x<h>.png`.
    async fn screenshot(&self, page: &str) -> PathBuf {
        let (w, h) = self.size.get();
        let path = self.shots.join(format!("{}-{page}-{w}x{h}.png", self.test));
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Waits (at most `bound`) until an element matches `css`; on a timeout
    /// saves a screenshot of what the page showed and fails.
    async fn wait_for_within(&self, css: &str, bound: Duration) -> Element {
        match self
            .client
            .wait()
            .at_most(bound)
            .every(Duration::from_millis(100))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => {
                let shot = self.screenshot("timeout").await;
                let page = self
                    .js("const m = document.getElementById('page'); \
                         return m ? m.outerHTML.slice(0, 4000) : document.body.outerHTML.slice(0, 4000)")
                    .await;
                panic!(
                    "`{css}` did not appear within {bound:?} ({e}); screenshot {}; page: {}",
                    shot.display(),
                    page.as_str().unwrap_or_default()
                )
            }
        }
    }

    async fn wait_for(&self, css: &str) -> Element {
        self.wait_for_within(css, UI_WAIT).await
    }

    async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` in the page: {e}"))
    }

    async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.unwrap().len()
    }

    /// Replaces the value of the field matching `css` by typing `text`
    /// (WebDriver key codes such as Ctrl `\u{e009}` included).
    async fn type_into(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Signs in with `token` through the form and waits for the navigation.
    async fn sign_in(&self, token: &str) {
        self.submit_token(token).await;
        self.wait_for("nav#nav").await;
        self.wait_for("main#page[data-ready=\"true\"]").await;
    }

    /// Types `token` into the sign-in form and submits it.
    async fn submit_token(&self, token: &str) {
        let field = self.wait_for("form#signin input#token").await;
        assert_eq!(
            field.attr("type").await.unwrap().as_deref(),
            Some("password")
        );
        self.type_into("input#token", token).await;
        self.find("button#signin-submit")
            .await
            .click()
            .await
            .unwrap();
    }

    /// Goes to `route` (a hash route, as a link does) and waits until its
    /// page has rendered: `main#page[data-page=<name>][data-ready="true"]`.
    /// Returns the page's name.
    async fn go(&self, route: &str) -> &'static str {
        let name = page_name(route);
        self.client
            .execute(
                "const [route] = arguments; \
                 if (location.hash !== route) { \
                   const main = document.getElementById('page'); \
                   if (main) main.removeAttribute('data-ready'); \
                   location.hash = route; \
                 }",
                vec![json!(route)],
            )
            .await
            .unwrap();
        self.wait_for(&format!(
            "main#page[data-page=\"{name}\"][data-ready=\"true\"]"
        ))
        .await;
        name
    }
}

/// The page module a route renders (the contract's names).
fn page_name(route: &str) -> &'static str {
    let path = route.trim_start_matches("#/");
    if path.starts_with("blobs/") {
        return "blob";
    }
    PAGES
        .iter()
        .map(|p| p.trim_start_matches("#/"))
        .find(|p| *p == path)
        .unwrap_or_else(|| panic!("no page for route {route}"))
}

/// Words of `text`, whitespace normalised (rendered text folds spaces).
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The data of blob `id`, as JSON.
async fn blob_data(http: &reqwest::Client, host: &Host, token: &str, id: &str) -> Value {
    get_json(http, format!("{}/v1/blobs/{id}/data", host.url), token).await
}

/// The API's message for a refusal: what the console must show
/// (`problem.detail || problem.title`).
async fn problem_message(response: reqwest::Response) -> String {
    assert!(
        response.status().is_client_error(),
        "a refusal, got {}",
        response.status()
    );
    let problem: Value = response.json().await.unwrap();
    problem["detail"]
        .as_str()
        .or(problem["title"].as_str())
        .unwrap_or_else(|| panic!("a problem with a detail or title: {problem}"))
        .to_owned()
}

/// Posts a `text-input-v1` of `content` and waits until its jobs settle;
/// returns the input's id and what was derived from it.
async fn text_and_derived(
    http: &reqwest::Client,
    host: &Host,
    token: &str,
    content: &str,
) -> (String, Value) {
    let input = post_text(http, host, token, content).await;
    let id = input["id"].as_str().unwrap().to_owned();
    let derived = settled_derived(http, host, token, &id).await;
    (id, derived)
}

/// The id of the blob of `schema` in a `/derived` answer.
fn derived_of(derived: &Value, schema: &str) -> String {
    derived["derived"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["schema"] == schema)
        .unwrap_or_else(|| panic!("no {schema} derived: {derived}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_refuses_a_wrong_token_and_accepts_the_operators() {
    let reyna = Reyna::start();
    let (host, token, http) = (&reyna.host, reyna.token.as_str(), &reyna.http);
    let browser = Browser::open("signin", host).await;

    // A wrong token: the API's own message, in an alert, and no navigation.
    let wrong = "not-a-reyna-token";
    let refused = http
        .get(format!("{}/v1/me", host.url))
        .bearer_auth(wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let message = problem_message(refused).await;
    browser.submit_token(wrong).await;
    let error = browser.wait_for("#signin-error").await;
    assert_eq!(error.attr("role").await.unwrap().as_deref(), Some("alert"));
    let shown = error.text().await.unwrap();
    assert!(
        shown.contains(&message),
        "#signin-error shows the API's message `{message}`, got `{shown}`"
    );
    assert_eq!(
        browser.count("nav#nav").await,
        0,
        "no navigation when refused"
    );
    browser.screenshot("form").await;

    // The operator's token: the navigation with a link per page, the token
    // kept for the tab only.
    browser.sign_in(token).await;
    for route in PAGES.iter().filter(|r| !r.contains('{')) {
        let link = format!("nav#nav a[href=\"{route}\"]");
        assert_eq!(browser.count(&link).await, 1, "one `{link}`");
    }
    assert_eq!(
        browser
            .js("return sessionStorage.getItem('reyna.token')")
            .await,
        json!(token)
    );
    assert_eq!(browser.count("#signin-error").await, 0);
    browser.screenshot("overview").await;

    // Signing out forgets the token and shows the form again.
    browser.find("button#signout").await.click().await.unwrap();
    browser.wait_for("form#signin").await;
    assert_eq!(
        browser
            .js("return sessionStorage.getItem('reyna.token')")
            .await,
        Value::Null
    );
    assert_eq!(browser.count("nav#nav").await, 0);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn studio_shows_a_chapters_expansion_and_stats_live_and_compiles_the_book() {
    let reyna = Reyna::start();
    let (host, token, http) = (&reyna.host, reyna.token.as_str(), &reyna.http);
    let browser = Browser::signed_in("studio", host, token).await;
    browser.go("#/studio").await;
    browser.js("window.__marker = 1").await;

    // Chapter 1, sent with the button once the page's socket is ready.
    browser.type_into("input#studio-book", "book-e2e").await;
    browser.type_into("input#studio-chapter", "1").await;
    browser.type_into("textarea#studio-text", CHAPTER).await;
    browser
        .wait_for("button#studio-send:not([disabled])")
        .await
        .click()
        .await
        .unwrap();

    // The expansion appears, and it is the derived blob's text.
    let expanded = browser
        .wait_for_within(
            "#studio-output .derived[data-schema=\"expanded-text-v1\"] .expanded",
            WAIT,
        )
        .await;
    let card = browser
        .find("#studio-output .derived[data-schema=\"expanded-text-v1\"]")
        .await;
    let id = card.attr("data-blob-id").await.unwrap().unwrap();
    assert_eq!(
        browser
            .count(&format!(
                "#studio-output .derived[data-blob-id=\"{id}\"] a[href=\"#/blobs/{id}\"]"
            ))
            .await,
        1,
        "the expansion links to its blob's page"
    );
    // The card says how long it took from Send to its appearance (the
    // seed's "to the UI" figure; reported, not asserted: machines differ).
    let latency = browser
        .find(&format!(
            "#studio-output .derived[data-blob-id=\"{id}\"] .latency"
        ))
        .await
        .attr("data-latency-ms")
        .await
        .unwrap()
        .expect("the expansion's card has its latency");
    let latency: u64 = latency.parse().expect("a whole number of milliseconds");
    eprintln!("studio: Send to the expansion on the page in {latency} ms");
    let data = blob_data(http, host, token, &id).await;
    assert_eq!(words(data["original"].as_str().unwrap()), words(CHAPTER));
    assert_eq!(data["metadata"]["book_id"], "book-e2e");
    assert_eq!(data["metadata"]["chapter"], 1);
    assert_eq!(
        words(&expanded.text().await.unwrap()),
        words(data["expanded"].as_str().unwrap()),
        "the page shows the expanded text the blob holds"
    );

    // The statistics appear too, and they are a word-stats-v1 blob.
    let stats = browser
        .wait_for_within(
            "#studio-output .derived[data-schema=\"word-stats-v1\"]",
            WAIT,
        )
        .await;
    let stats_id = stats.attr("data-blob-id").await.unwrap().unwrap();
    let meta = get_json(http, format!("{}/v1/blobs/{stats_id}", host.url), token).await;
    assert_eq!(meta["schema"], "word-stats-v1");
    browser.screenshot("chapter").await;

    // Chapter 2, sent with Ctrl+Enter; both chapters are listed.
    browser.type_into("input#studio-chapter", "2").await;
    browser
        .type_into(
            "textarea#studio-text",
            &format!("{CHAPTER_TWO}\u{e009}\u{e007}"),
        )
        .await;
    let mut chapters = Vec::new();
    for index in [1, 2] {
        let item = browser
            .wait_for_within(
                &format!("#studio-chapters li[data-index=\"{index}\"][data-blob-id]"),
                WAIT,
            )
            .await;
        chapters.push(item.attr("data-blob-id").await.unwrap().unwrap());
    }

    // Compiling makes the book, whose parents are the two chapters.
    browser
        .wait_for("button#studio-compile:not([disabled])")
        .await
        .click()
        .await
        .unwrap();
    let link = browser
        .wait_for_within(
            "#studio-output .derived[data-schema=\"compiled-book-v1\"] a.lineage",
            WAIT,
        )
        .await;
    let href = link.attr("href").await.unwrap().unwrap();
    let book = href
        .strip_prefix("#/blobs/")
        .unwrap_or_else(|| panic!("a.lineage links to a blob's page: {href}"));
    let meta = get_json(http, format!("{}/v1/blobs/{book}", host.url), token).await;
    assert_eq!(meta["schema"], "compiled-book-v1");
    // Its parents: the two chapters and the compile request it answers.
    let parents: Vec<String> = serde_json::from_value(meta["parents"].clone()).unwrap();
    for chapter in &chapters {
        assert!(
            parents.contains(chapter),
            "chapter {chapter} is a parent: {meta}"
        );
    }
    for other in parents.iter().filter(|p| !chapters.contains(p)) {
        let parent = get_json(http, format!("{}/v1/blobs/{other}", host.url), token).await;
        assert_eq!(parent["schema"], "book-compile-request-v1", "{parent}");
    }

    // All of it without a reload: the page's own state survived.
    assert_eq!(browser.js("return window.__marker").await, json!(1));
    browser.screenshot("studio").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_graph_leads_from_a_derived_blob_to_its_parent() {
    let reyna = Reyna::start();
    let (host, token, http) = (&reyna.host, reyna.token.as_str(), &reyna.http);
    let (parent, derived) = text_and_derived(http, host, token, CHAPTER).await;
    let child = derived_of(&derived, "expanded-text-v1");

    let browser = Browser::signed_in("lineage", host, token).await;
    browser.go(&format!("#/blobs/{child}")).await;
    browser
        .wait_for(&format!(
            "#blob-lineage svg#lineage g.node.current[data-blob-id=\"{child}\"]"
        ))
        .await;
    let node = browser
        .wait_for(&format!(
            "#blob-lineage svg#lineage g.node[data-blob-id=\"{parent}\"]"
        ))
        .await;
    browser.show("#blob-lineage").await;
    browser.screenshot("blob").await;

    node.click().await.unwrap();
    let mut want = browser.client.current_url().await.unwrap();
    want.set_fragment(Some(&format!("/blobs/{parent}")));
    browser
        .client
        .wait()
        .at_most(UI_WAIT)
        .for_url(&want)
        .await
        .unwrap_or_else(|e| panic!("the URL did not become {want}: {e}"));
    browser
        .wait_for(&format!(
            "#blob-lineage svg#lineage g.node.current[data-blob-id=\"{parent}\"]"
        ))
        .await;
    browser
        .wait_for("main#page[data-page=\"blob\"][data-ready=\"true\"]")
        .await;
    let shown = browser.find("#blob-data").await.text().await.unwrap();
    assert!(
        words(&shown).contains(&words(CHAPTER)),
        "the parent's page shows its data, got `{shown}`"
    );
    browser.show("#blob-lineage").await;
    browser.screenshot("parent-blob").await;
    browser.close().await;
}

/// `n` random bytes (std's randomly keyed hasher, no extra dependency).
fn random_bytes(n: usize) -> Vec<u8> {
    use std::hash::{BuildHasher as _, RandomState};
    let state = RandomState::new();
    (0..n.div_ceil(8))
        .flat_map(|i| state.hash_one(i).to_le_bytes())
        .take(n)
        .collect()
}

/// The names and versions of the plugins the API lists.
async fn plugin_list(http: &reqwest::Client, host: &Host, token: &str) -> Vec<(String, String)> {
    let plugins = get_json(http, format!("{}/v1/plugins", host.url), token).await;
    let mut list: Vec<(String, String)> = plugins
        .as_array()
        .unwrap_or_else(|| panic!("a list of plugins: {plugins}"))
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    list.sort();
    list
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploading_a_file_that_is_not_a_plugin_shows_the_refusal() {
    let reyna = Reyna::start();
    let (host, token, http) = (&reyna.host, reyna.token.as_str(), &reyna.http);
    let file = host.dir.join("random.wasm");
    let bytes = random_bytes(4096);
    std::fs::write(&file, &bytes).unwrap();
    let before = plugin_list(http, host, token).await;
    // What the API says about these bytes (a refusal stores nothing).
    let refused = common::upload_plugin(http, host, token, bytes).await;
    let message = problem_message(refused).await;

    let browser = Browser::signed_in("plugins", host, token).await;
    browser.go("#/plugins").await;
    let rows_before = browser.count("tr.plugin[data-plugin]").await;
    assert!(rows_before > 0, "the bundled plugins are listed");
    browser
        .find("input#plugin-file")
        .await
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    let error = browser.wait_for("#plugin-upload-error").await;
    assert_eq!(error.attr("role").await.unwrap().as_deref(), Some("alert"));
    let shown = error.text().await.unwrap();
    assert!(
        shown.contains(&message),
        "#plugin-upload-error shows the API's detail `{message}`, got `{shown}`"
    );
    assert_eq!(browser.count("#plugin-upload-ok").await, 0);
    browser.screenshot("upload-refused").await;

    assert_eq!(plugin_list(http, host, token).await, before);
    assert_eq!(browser.count("tr.plugin[data-plugin]").await, rows_before);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_dead_letter_from_its_row_replays_the_job() {
    let reyna = Reyna::start();
    let (host, token, http) = (&reyna.host, reyna.token.as_str(), &reyna.http);
    // `moody` fails as its input's first word asks, and retries nothing:
    // its failure is dead-lettered at once.
    let moody = reyna_artifacts::bytes("moody").unwrap();
    let uploaded = common::upload_plugin(http, host, token, moody).await;
    assert_eq!(uploaded.status(), 201);
    let (input, derived) =
        text_and_derived(http, host, token, "fatal is what moody is asked here").await;
    let job = derived["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["plugin"] == "moody")
        .unwrap_or_else(|| panic!("a moody job for {input}: {derived}"))
        .clone();
    assert_eq!(job["state"], "dead", "{job}");
    let job_id = job["id"].as_str().unwrap().to_owned();
    let letter = |letters: &Value| {
        letters["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["job"]["id"] == job_id.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("a dead letter of job {job_id}: {letters}"))
    };
    let letters = get_json(http, format!("{}/v1/dead-letters", host.url), token).await;
    assert_eq!(letter(&letters)["replayed_at"], Value::Null);

    let browser = Browser::signed_in("dead-letters", host, token).await;
    browser.go("#/dead-letters").await;
    let row = format!("tr.dead-letter[data-job-id=\"{job_id}\"]");
    browser.screenshot("dead-letter").await;
    browser
        .wait_for(&format!("{row} button.replay"))
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_for(&format!(
            "tr.dead-letter.replayed[data-job-id=\"{job_id}\"]"
        ))
        .await;
    let message = browser
        .wait_for("#dead-letters-message")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        message.contains(&job_id),
        "#dead-letters-message names job {job_id}: `{message}`"
    );
    browser.screenshot("replayed").await;

    // The API agrees: the letter is replayed and the job ran again.
    let letters = get_json(http, format!("{}/v1/dead-letters", host.url), token).await;
    assert!(
        letter(&letters)["replayed_at"].is_u64(),
        "{}",
        letter(&letters)
    );
    let again = get_json(http, format!("{}/v1/jobs/{job_id}", host.url), token).await;
    assert!(
        again["attempt"].as_u64().unwrap() > job["attempt"].as_u64().unwrap(),
        "the replay is the job's next attempt: {again}"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_fits_a_desktop_and_a_phone() {
    let reyna = Reyna::start();
    let (host, token, http) = (&reyna.host, reyna.token.as_str(), &reyna.http);
    // Something on every page: a text, what was derived from it, its jobs.
    let (_, derived) = text_and_derived(http, host, token, CHAPTER).await;
    let blob = derived_of(&derived, "expanded-text-v1");

    let browser = Browser::signed_in("responsive", host, token).await;
    for size in [DESKTOP, PHONE] {
        browser.resize(size).await;
        for route in PAGES {
            let route = route.replace("{id}", &blob);
            let name = browser.go(&route).await;
            if name == "blob" {
                browser.wait_for("#blob-lineage svg#lineage").await;
            }
            let widths = browser
                .js("return [document.documentElement.scrollWidth, window.innerWidth]")
                .await;
            let (scroll, inner) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
            assert_eq!(inner, u64::from(size.0), "{route}: the viewport's width");
            let shot = browser.screenshot(name).await;
            assert!(
                scroll <= inner,
                "{route} at {}x{}: the document is {scroll}px wide in a {inner}px window \
                 (screenshot {})",
                size.0,
                size.1,
                shot.display()
            );
        }
    }
    browser.close().await;
}
