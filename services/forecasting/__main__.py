from services.forecasting.server import main

main()
