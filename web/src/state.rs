//! The app's shared state: which screen shows, the open wallet, the LSP terms, the join in
//! progress. Created once at the root and handed to every component as context.

use std::rc::Rc;

use bitcoin::Txid;
use leptos::prelude::*;
use shared::terms::SignedTerms;
use wallet::account::{Account, JoinStep, Profile, SeedCheck};
use wallet::chain::TipWatch;
use wallet::keys::Seed;
use wallet::lsp::TermsCheck;

/// The screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// Looking for a stored wallet.
    Loading,
    /// No wallet here: create or restore.
    Welcome,
    /// The new wallet's 24 words.
    ShowSeed,
    /// Asking for three of them.
    CheckSeed,
    /// Typing words of an existing wallet.
    Restore,
    /// Choosing passphrase or device key.
    Protect,
    /// A stored wallet, locked.
    Unlock,
    /// Balances and the factory.
    Home,
    /// Choosing the LSP.
    Lsp,
    /// Asking for liquidity, the quote, and the join's progress.
    Join,
    /// Esplora, network, backup, wipe.
    Settings,
    /// Making an invoice, and seeing it paid.
    Receive,
    /// Paying an invoice: quote, confirm, result.
    Send,
    /// Payments made and received.
    History,
}

/// An LSP and what it says about itself.
#[derive(Debug, Clone)]
pub struct LspInfo {
    /// Its web origin.
    pub origin: String,
    /// Its signed terms.
    pub terms: SignedTerms,
    /// The wallet's checks of them.
    pub check: TermsCheck,
}

/// Where talking to an LSP stands.
#[derive(Debug, Clone)]
pub enum LspView {
    /// Asking it.
    Connecting,
    /// Its terms.
    Ready(Box<LspInfo>),
    /// What went wrong.
    Failed(String),
}

impl LspView {
    /// The terms, when there are some.
    pub fn info(&self) -> Option<&LspInfo> {
        match self {
            LspView::Ready(info) => Some(info),
            _ => None,
        }
    }
}

/// The onboarding draft: the seed before it is stored.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The seed (new or restored).
    pub seed: Seed,
    /// Whether it was restored (no check needed).
    pub restored: bool,
    /// The words asked for in the check.
    pub check: SeedCheck,
}

/// A join's progress, for the progress screen.
#[derive(Debug, Clone, Default)]
pub struct JoinProgress {
    /// The step reached (`None`: no join started in this tab).
    pub step: Option<JoinStep>,
    /// The session runs.
    pub running: bool,
    /// The funding transaction, once broadcast.
    pub funding: Option<Txid>,
    /// Confirmations seen / needed.
    pub confirmations: Option<(u32, u32)>,
    /// How it ended, when not open.
    pub error: Option<String>,
    /// The latest thing that happened, in words.
    pub last: String,
    /// The factory joined and the end of its gathering (unix time), once accepted.
    pub joined: Option<(shared::types::FactoryId, u64)>,
    /// How the factory is filling up, as the provider last said (while it gathers).
    pub gathering: Option<shared::ceremony::GatheringStatus>,
    /// Counts connection changes, so a loss is shown only if no reconnect followed it soon.
    pub link_epoch: u64,
}

/// An exit's progress.
#[derive(Debug, Clone, Default)]
pub struct ExitProgress {
    /// The exit runs.
    pub running: bool,
    /// The latest step's result.
    pub status: Option<wallet::exit::ExitStatus>,
    /// Every distinct step so far, in words.
    pub log: Vec<String>,
    /// The last error (the exit keeps trying).
    pub error: Option<String>,
    /// Why the wallet started this exit by itself, if it did.
    pub started_by: Option<AutoExit>,
}

/// Where a move to a new factory stands (`moving`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MoveStep {
    /// Joining a new factory of the same provider (the join's own steps show below).
    Joining,
    /// Joined; waiting for the new factory's channel to open.
    Opening,
    /// Paying the whole balance from the old channel to the new one.
    Moving,
    /// Moved, and the old factory's key handed to the provider.
    Moved,
}

/// A move out of a dying factory, started in this tab.
#[derive(Debug, Clone, Default)]
pub struct MoveProgress {
    /// The step reached (`None`: no move started in this tab).
    pub step: Option<MoveStep>,
    /// The move runs.
    pub running: bool,
    /// The factory moved out of.
    pub from: Option<shared::types::FactoryId>,
    /// The factory moved to, once known.
    pub to: Option<shared::types::FactoryId>,
    /// What moved, once it did.
    pub amount: Option<bitcoin::Amount>,
    /// Why it stopped, when it failed (nothing was lost: the money stays where it was).
    pub error: Option<String>,
}

/// Why the wallet started an exit without the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoExit {
    /// The factory's funding output was spent on chain by this transaction.
    FundingSpent(bitcoin::Txid),
    /// The provider did not settle a payment by its deadline: the channel must go on chain
    /// to collect it.
    Overdue,
}

/// Where the wallet's payment client stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PayPhase {
    /// Not running: no open wallet, or no factory of it is funded yet.
    #[default]
    Off,
    /// Started; connecting to the provider.
    Connecting,
    /// Connected to the provider.
    Connected,
    /// The connection broke (why); the client reconnects by itself.
    Disconnected(String),
    /// The client stopped on an error it cannot go on from.
    Failed(String),
    /// Stopped on purpose for a while (why, in words); balances are as last seen.
    Paused(String),
}

impl PayPhase {
    /// Whether a client runs (it may be reconnecting): payments can be asked for.
    pub fn runs(&self) -> bool {
        !matches!(self, PayPhase::Off | PayPhase::Paused(_))
    }
}

/// What the payment screens show: the client's phase and its latest balances and history.
#[derive(Debug, Clone, Default)]
pub struct PayView {
    /// The client's phase.
    pub phase: PayPhase,
    /// Balances and history, as of the latest event.
    pub snapshot: Option<wallet::pay::Snapshot>,
    /// Payments received while this tab runs, oldest first (the receive screen watches it).
    pub received: Vec<wallet::pay::PaymentRecord>,
    /// The latest thing the provider refused, or why the client cannot start.
    pub notice: Option<String>,
    /// Counts connection changes, so a loss is shown only if no reconnect followed it soon.
    pub link_epoch: u64,
    /// Factories with a channel whose payment deadline passed unsettled: their exit starts by
    /// itself.
    pub overdue: std::collections::BTreeSet<shared::types::FactoryId>,
}

/// The running payment client's handle, and whether its task has ended (so its hold on the
/// vault is gone).
#[derive(Debug, Clone)]
pub struct PayRun {
    /// Commands to the client.
    pub handle: wallet::pay::PayHandle,
    /// Set when the client's task has ended.
    pub done: Rc<std::cell::Cell<bool>>,
}

/// Every component's handle on the app state (all fields are cheap copies).
#[derive(Clone, Copy)]
pub struct AppCtx {
    /// The screen shown.
    pub screen: RwSignal<Screen>,
    /// The open wallet.
    pub account: StoredValue<Option<Rc<Account>>, LocalStorage>,
    /// A copy of the open wallet's profile, to redraw when it changes.
    pub profile: RwSignal<Option<Profile>>,
    /// The LSP this page starts with: the one named by `?lsp=`, else the page's own origin
    /// (when an LSP serves the page).
    pub serving: RwSignal<LspView>,
    /// The LSP chosen for joining.
    pub chosen: RwSignal<LspView>,
    /// The onboarding draft.
    pub draft: StoredValue<Option<Draft>>,
    /// The join in progress.
    pub join: RwSignal<JoinProgress>,
    /// The exit in progress.
    pub exit: RwSignal<ExitProgress>,
    /// The move to a new factory in progress.
    pub moving: RwSignal<MoveProgress>,
    /// The browser's answer to `navigator.storage.persist()`.
    pub persisted: RwSignal<Option<Result<bool, String>>>,
    /// The payment client's state, for the payment screens.
    pub pay: RwSignal<PayView>,
    /// The running payment client (see `payments`).
    pub pay_run: StoredValue<Option<PayRun>, LocalStorage>,
    /// Bumped to cancel a payment client waiting for a funded factory.
    pub pay_generation: StoredValue<u64>,
    /// How long a block takes on the wallet's network (block counts are shown with times).
    pub pace: RwSignal<wallet::pace::BlockPace>,
    /// The wallet left its factory (an exit started here, or its payout or leaf is on chain):
    /// its channel is closed, so nothing that needs it is offered.
    pub left: RwSignal<bool>,
    /// A short message over every screen (a payment came in), with its number.
    pub toast: RwSignal<Option<(u64, String)>>,
    /// The highest chain tip seen (the open wallet's, once one is open).
    pub tips: StoredValue<TipWatch>,
}

impl AppCtx {
    /// Fresh state.
    pub fn new() -> AppCtx {
        AppCtx {
            screen: RwSignal::new(Screen::Loading),
            account: StoredValue::new_local(None),
            profile: RwSignal::new(None),
            serving: RwSignal::new(LspView::Connecting),
            chosen: RwSignal::new(LspView::Connecting),
            draft: StoredValue::new(None),
            join: RwSignal::new(JoinProgress::default()),
            exit: RwSignal::new(ExitProgress::default()),
            moving: RwSignal::new(MoveProgress::default()),
            persisted: RwSignal::new(None),
            pay: RwSignal::new(PayView::default()),
            pay_run: StoredValue::new_local(None),
            pay_generation: StoredValue::new(0),
            pace: RwSignal::new(wallet::pace::BlockPace::default()),
            toast: RwSignal::new(None),
            left: RwSignal::new(false),
            tips: StoredValue::new(TipWatch::new()),
        }
    }

    /// The app state from context.
    pub fn get() -> AppCtx {
        expect_context::<AppCtx>()
    }

    /// The open wallet.
    pub fn account(&self) -> Option<Rc<Account>> {
        self.account.get_value()
    }

    /// Makes `account` the open wallet and shows the home screen.
    pub fn opened(&self, account: Account) {
        let profile = account.profile();
        let tips = account.tip_watch();
        if let Some(seen) = self.tips.get_value().highest() {
            tips.saw(seen);
        }
        self.tips.set_value(tips);
        self.profile.set(Some(profile.clone()));
        self.account.set_value(Some(Rc::new(account)));
        self.screen.set(Screen::Home);
        crate::payments::start(*self);
        // The wallet's own provider, checked against the wallet's network (the page may come
        // from another provider, or from one on another network).
        let chosen = self.chosen;
        leptos::task::spawn_local(async move {
            chosen.set(LspView::Connecting);
            chosen.set(load_lsp(&profile.lsp_origin, Some(profile.network)).await);
        });
    }

    /// The running payment client's handle.
    pub fn pay_handle(&self) -> Option<wallet::pay::PayHandle> {
        self.pay_run
            .with_value(|r| r.as_ref().map(|r| r.handle.clone()))
    }

    /// The Esplora endpoint to read: the wallet's own choice, else the network's default
    /// (never the provider's); before a wallet exists, the page's `?esplora=` or the default
    /// for the starting provider's network. Read once, not tracked (for tasks, not views).
    pub fn esplora_url(&self) -> Option<String> {
        self.profile
            .with_untracked(|p| self.chain_source_of(p.as_ref()))
    }

    /// [`AppCtx::esplora_url`] for `profile` (tracked when called in a view).
    pub fn chain_source_of(&self, profile: Option<&Profile>) -> Option<String> {
        if let Some(p) = profile {
            return Some(p.esplora());
        }
        if let Some(url) = page_param("esplora") {
            return Some(wallet::chain::normalize(&url));
        }
        let network = self
            .serving
            .with_untracked(|s| s.info().map(|i| i.terms.body.network))?;
        Some(wallet::chain::default_esplora(network).to_string())
    }

    /// Whether `url` is the chain source the chosen provider reads itself (it could then hide
    /// the chain from this wallet). Tracked.
    pub fn is_providers_chain(&self, url: &str) -> bool {
        let from_terms = self
            .chosen
            .with(|c| c.info().map(|i| i.terms.body.esplora_url.clone()));
        let stored = self
            .profile
            .with(|p| p.as_ref().and_then(|p| p.lsp_esplora.clone()));
        from_terms
            .into_iter()
            .chain(stored)
            .any(|lsp| wallet::chain::same_source(url, &lsp))
    }

    /// The highest chain tip seen, for every chain read of this tab.
    pub fn tip_watch(&self) -> TipWatch {
        self.tips.get_value()
    }
}

/// The web origin this page was served from (an LSP's, or any static host's).
pub fn page_origin() -> String {
    web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default()
}

/// The page address's query parameter `name` (`?lsp=https://…&esplora=https://…`), decoded.
pub fn page_param(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    search
        .trim_start_matches('?')
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| js_sys::decode_uri_component(&v.replace('+', " ")).ok())
        .map(String::from)
        .filter(|v| !v.trim().is_empty())
}

/// The provider the page starts with: `?lsp=`, else the page's own origin.
pub fn starting_lsp() -> String {
    page_param("lsp")
        .map(|u| wallet::chain::normalize(&u))
        .unwrap_or_else(page_origin)
}

/// The LSP at `origin`: its terms and their checks against `network` (the terms' own network
/// while no wallet exists yet).
pub async fn load_lsp(origin: &str, network: Option<bitcoin::Network>) -> LspView {
    match wallet::lsp::fetch_signed_terms(origin).await {
        Ok(terms) => {
            let network = network.unwrap_or(terms.body.network);
            let check = TermsCheck::of(&terms, wallet::platform::unix_now(), network);
            LspView::Ready(Box::new(LspInfo {
                origin: origin.trim_end_matches('/').to_string(),
                terms,
                check,
            }))
        }
        Err(e) => LspView::Failed(e.to_string()),
    }
}
