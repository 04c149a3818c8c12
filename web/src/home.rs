//! Home: Lightning balance and payments, the factory's balances, status and remaining life, and its picture.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use wallet::format::sats;

use bitcoin::absolute::Height;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wallet::account::{approx_wall_time, Account, FactoryOverview, FactoryPhase};
use wallet::picture::{path_picture, PictureNode};
use wallet::session::{ChainSource, EsploraChain, StoredPath};

use crate::exit_card::ExitCard;
use crate::factory_tree::FactoryTree;
use crate::faucet_card::FaucetCard;
use crate::liquidity_card::LiquidityCard;
use crate::pay_card::PayCard;
use crate::state::{AppCtx, Screen};

const REFRESH_MS: u32 = 2_000;

/// What the home screen last read.
#[derive(Debug, Clone, Default)]
struct HomeData {
    overview: Option<FactoryOverview>,
    /// The path shown, when its funding confirmed (what an exit would use).
    funded: Option<StoredPath>,
    picture: Vec<PictureNode>,
    tip: Option<u32>,
    error: Option<String>,
    loaded: bool,
}

/// The home screen.
#[component]
pub fn Home() -> impl IntoView {
    let ctx = AppCtx::get();
    let data = RwSignal::new(HomeData::default());
    let alive = Arc::new(AtomicBool::new(true));
    let flag = alive.clone();
    on_cleanup(move || flag.store(false, Ordering::Relaxed));
    if ctx.account().is_some() {
        spawn_local(async move {
            while alive.load(Ordering::Relaxed) {
                // Held only while reading, so settings can wipe the wallet.
                let Some(account) = ctx.account() else { return };
                let next = read(&account, ctx.esplora_url()).await;
                drop(account);
                if data.try_set(next).is_some() {
                    return;
                }
                gloo_timers::future::TimeoutFuture::new(REFRESH_MS).await;
            }
        });
    }
    let sweep = ctx
        .account()
        .and_then(|a| a.sweep_address().ok())
        .map(|a| a.to_string())
        .unwrap_or_default();
    // Redrawn only when they change, not at every refresh.
    let funded = Memo::new(move |_| data.with(|d| d.funded.clone()));
    let picture = Memo::new(move |_| data.with(|d| d.picture.clone()));
    // What liquidity purchases moved from the leaf's stock into the channel: the channel's
    // capacity now, less the leaf's channel output at state 0.
    let sold = move |d: &HomeData| {
        let (Some(funded), Some(o)) = (&d.funded, &d.overview) else {
            return bitcoin::Amount::ZERO;
        };
        ctx.pay.with(|p| {
            p.snapshot
                .as_ref()
                .and_then(|s| {
                    s.channels
                        .iter()
                        .find(|c| c.channel.factory == funded.factory)
                        .and_then(|c| c.capacity.checked_sub(o.channel))
                })
                .unwrap_or(bitcoin::Amount::ZERO)
        })
    };
    let joining = move || ctx.join.with(|j| j.running);
    let last_join = move || {
        ctx.profile.with(|p| {
            p.as_ref()
                .and_then(|p| p.last_join().and_then(|j| j.ended.clone()))
        })
    };
    view! {
        <PayCard />
        <FaucetCard />
        <LiquidityCard />
        <section class="card" id="balances">
            <h2>"Your money"</h2>
            {move || data.with(|d| match &d.overview {
                Some(o) => view! {
                    <dl>
                        <dt>"Channel"</dt><dd id="balance-channel">{sats(o.channel + sold(d))}</dd>
                        <dt>"Liquidity stock (inbound you can buy)"</dt>
                        <dd id="balance-inbound">{sats(o.inbound.checked_sub(sold(d)).unwrap_or(bitcoin::Amount::ZERO))}</dd>
                    </dl>
                }.into_any(),
                None => view! { <p id="balance-none">"No channel yet: join a factory to get one."</p> }.into_any(),
            })}
            <p class="hint">"On-chain address for leaving a factory:"</p>
            <p class="mono" id="sweep-address">{sweep}</p>
            <p class="hint" id="persist-status">{move || ctx.persisted.get().map(|p| match p {
                Ok(true) => "This browser promised to keep the wallet's storage.".to_string(),
                Ok(false) => "This browser may clear the wallet's storage when space runs low: keep your words and a backup.".to_string(),
                Err(e) => format!("Storage persistence unknown: {e}"),
            })}</p>
        </section>
        <section class="card" id="factory">
            <h2>"Factory"</h2>
            {move || data.with(|d| match &d.overview {
                Some(o) => view! {
                    <p>"Status: "<strong id="factory-status" data-phase=phase_id(o.phase)>{o.phase.describe()}</strong></p>
                    <dl>
                        <dt>"Members"</dt><dd id="factory-clients">{o.clients}</dd>
                        <dt>"Dying period"</dt>
                        <dd id="dying-in">{if o.blocks_to_dying.to_blocks() == 0 {
                            format!("since block {}", o.dying_at)
                        } else {
                            format!("in {} blocks ({}), at block {}", o.blocks_to_dying.to_blocks(), approx_wall_time(o.blocks_to_dying), o.dying_at)
                        }}</dd>
                        <dt>"Latest block"</dt><dd id="home-tip">{d.tip}</dd>
                        <dt>"Funding"</dt><dd class="mono" id="funding-txid">{o.funding.to_string()}</dd>
                    </dl>
                }.into_any(),
                None => view! {
                    <p id="factory-status" data-phase="none">{if d.loaded { "You are not in a factory yet." } else { "Reading…" }}</p>
                    <p class="hint" id="last-join">{last_join}</p>
                    <Show when=move || !joining()>
                        <button class="primary" id="start-join" on:click=move |_| ctx.screen.set(Screen::Join)>"Join a factory"</button>
                    </Show>
                }.into_any(),
            })}
            <Show when=joining>
                <button id="see-join" on:click=move |_| ctx.screen.set(Screen::Join)>"A join is under way: see it"</button>
            </Show>
            {move || { let nodes = picture.get(); (!nodes.is_empty()).then(|| view! { <FactoryTree nodes /> }) }}
            <p class="bad">{move || data.with(|d| d.error.clone())}</p>
        </section>
        {move || funded.get().map(|stored| view! { <ExitCard stored /> })}
    }
}

fn phase_id(phase: FactoryPhase) -> &'static str {
    match phase {
        FactoryPhase::Funding => "funding",
        FactoryPhase::Active => "live",
        FactoryPhase::Dying => "dying",
        FactoryPhase::Expired => "expired",
    }
}

/// Reads the stored paths and the chain: the newest factory whose funding confirmed, else the
/// newest stored one.
async fn read(account: &Account, esplora: Option<String>) -> HomeData {
    let mut data = HomeData {
        loaded: true,
        ..HomeData::default()
    };
    let paths = match account.paths().await {
        Ok(p) => p,
        Err(e) => {
            data.error = Some(e.to_string());
            return data;
        }
    };
    let Some(newest) = paths.last().cloned() else {
        return data;
    };
    let chain = esplora.as_deref().and_then(|u| EsploraChain::new(u).ok());
    let mut chosen: (StoredPath, bool) = (newest, false);
    if let Some(chain) = &chain {
        match chain.tip_height().await {
            Ok(tip) => data.tip = Some(tip),
            Err(e) => data.error = Some(e.to_string()),
        }
        for p in paths.iter().rev() {
            let txid = p.path.funding_outpoint().txid;
            if chain.confirmations(&txid).await.unwrap_or(0) > 0 {
                chosen = (p.clone(), true);
                break;
            }
        }
    }
    let (stored, funded) = chosen;
    data.funded = funded.then(|| stored.clone());
    let tip = data
        .tip
        .and_then(|t| Height::from_consensus(t).ok())
        .unwrap_or(stored.path.proposal().creation_height);
    data.overview = Some(FactoryOverview::new(&stored.path, tip, funded));
    let funding = stored.path.funding_outpoint().txid;
    data.picture = path_picture(&stored.path, |t| funded && *t == funding);
    data
}
